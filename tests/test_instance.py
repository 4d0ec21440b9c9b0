"""The Dagster instance keeps its state in PostgreSQL: partitions and runs survive a
restart of the process that wrote them."""

from __future__ import annotations

import subprocess
import sys
import uuid

import dagster as dg
import yaml

from outreach_cli.instance import SENSOR_THREADS, write_dagster_yaml


def test_instance_state_survives_a_new_process() -> None:
    home = write_dagster_yaml()
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert "postgres" in config["storage"]
    assert config["run_retries"]["enabled"] is True
    key = f"restart-{uuid.uuid4().hex[:8]}"
    # A separate process adds the partition and exits, as `dagster dev` or a run would.
    code = (
        "import dagster as dg; "
        f"i = dg.DagsterInstance.from_config({str(home)!r}); "
        f"i.add_dynamic_partitions('teams', [{key!r}])"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert key in instance.get_dynamic_partitions("teams")


def test_every_sensor_has_its_own_daemon_thread() -> None:
    """A sensor without a thread waits for another's slow tick (the daemon's 5 s loop)."""
    from outreach_assets.definitions import defs

    assert len(list(defs.sensors or [])) == SENSOR_THREADS

"""The Dagster instance keeps its state in PostgreSQL: partitions and runs survive a
restart of the process that wrote them."""

from __future__ import annotations

import subprocess
import sys
import uuid

import dagster as dg
import yaml

from outreach_cli.instance import write_dagster_yaml


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

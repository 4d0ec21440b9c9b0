"""The dbt project parses offline (no connection, no version check, no usage stats)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"


def test_dbt_parse(tmp_path: Path) -> None:
    dbt = Path(sys.executable).parent / "dbt"
    result = subprocess.run(
        [
            str(dbt),
            "parse",
            "--no-version-check",
            "--project-dir",
            str(PROJECT),
            "--profiles-dir",
            str(PROJECT),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if k.startswith("model.")}
    assert {"model.outreach.stg_leads", "model.outreach.fct_upload_quality"} <= set(models)
    # `+schema: analytics` with the profile's `analytics` builds into `analytics`, not the
    # `analytics_analytics` dbt's default naming would make.
    assert {m["schema"] for m in models.values()} == {"analytics"}

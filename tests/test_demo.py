"""`make demo` as a user runs it: the CLI in its own process, on this session's PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_demo_completes_every_sample_and_enriches_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OUTREACH_HOME": str(tmp_path),
        "OUTREACH_DATALAKE_URL": str(tmp_path / "datalake"),
        "COLUMNS": "200",  # one line per printed line
    }
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "outreach"), "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    samples = sorted(p.name for p in (REPO / "outreach_cli" / "demo_data").glob("*.csv"))
    # More samples than one sensor tick takes for a team: every one still completes.
    finals = dict(re.findall(r"^(\S+\.csv) -> \S+: (\w+)$", out, re.MULTILINE))
    assert finals == dict.fromkeys(samples, "completed"), out
    enriched = re.findall(r"^\w+\|[0-9a-f-]+: (\d+) open leads", out, re.MULTILINE)
    assert len(enriched) == len(samples) and all(int(n) > 0 for n in enriched), out
    assert "FAILED" not in out
    # The campaign: texts went out through the sandbox, their callbacks came back with
    # prices, and quiet hours held the leads whose morning has not come.
    sent, delivered = map(int, re.search(r"^sent (\d+) in .*; delivered (\d+)", out, re.M).groups())
    assert sent > 0 and delivered >= sent - 2, out
    assert re.search(r"^  held back, quiet_hours: \d+$", out, re.MULTILINE), out
    assert re.search(r"^SMS cost \$[1-9]", out, re.MULTILINE), out

"""Named crash points for restart tests: when OUTREACH_CRASH_AT names a point, the process
SIGKILLs itself there, as a power cut or an OOM kill would. Unset in production."""

from __future__ import annotations

import os
import signal


def crashpoint(name: str) -> None:
    if os.environ.get("OUTREACH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)

"""Named crash points for restart tests: when OUTREACH_CRASH_AT names a point, the process
SIGKILLs itself there, as a power cut or an OOM kill would. ``name:N`` kills at the N-th
time the point is reached. Unset in production."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

_hits: Counter[str] = Counter()
_lock = threading.Lock()


def crashpoint(name: str) -> None:
    target = os.environ.get("OUTREACH_CRASH_AT")
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] += 1
        reached = _hits[name] >= int(nth or 1)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)

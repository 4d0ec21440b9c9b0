"""A sandbox Slack-compatible incoming webhook on loopback that keeps what it receives, for
team notifications.

Any path takes a POST, so each team's `notify_webhook_url` can be this server's base URL
plus a path of its own (`http://127.0.0.1:PORT/team-a`). Like Slack's, it answers a JSON
object with a non-empty `text` with 200 `ok` and anything else with 400 `invalid_payload`.
What it accepted is kept in order (`received`, or `GET /received` from another process);
every POST counts in `attempts`, accepted or not.

Faults for tests, queued with ``inject()`` (or ``--fault``) and consumed one per POST: an HTTP
status (``500``; ``429`` comes with ``Retry-After: 1``), ``timeout[:secs]`` (hang past the
client's timeout, then hang up) and ``pass``.

Run ``python -m outreach_core.sandbox.incoming_webhook``: the first stdout line is its base
URL; a line per received post goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from urllib.parse import urlsplit

from outreach_core.sandbox.http_server import LoopbackSandbox, SandboxServer, serve_until_stopped

__all__ = ["FAULT_KINDS", "ReceivedPost", "SandboxIncomingWebhook", "main"]

MAX_BODY_BYTES: Final = 1_000_000
RECEIVED_PATH: Final = "/received"
DEFAULT_TIMEOUT_FAULT_SECONDS: Final = 15.0
FAULT_KINDS: Final = ("pass", "<3-digit status>", "timeout[:secs]")


@dataclass(frozen=True)
class ReceivedPost:
    path: str
    text: str
    payload: dict[str, Any]
    received_at: float


@dataclass(frozen=True)
class _Fault:
    kind: str
    seconds: float | None = None


def _parse_fault(spec: str) -> _Fault:
    kind, _, arg = spec.strip().lower().partition(":")
    if kind.isdigit() and len(kind) == 3 and not arg:
        return _Fault(kind)
    if kind == "timeout":
        return _Fault(kind, float(arg) if arg else None)
    if kind == "pass" and not arg:
        return _Fault(kind)
    raise ValueError(f"unknown fault {spec!r}; expected one of {', '.join(FAULT_KINDS)}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "IncomingWebhookSandbox/1.0"
    server: SandboxServer

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        self.server.sandbox._post(self)

    def do_GET(self) -> None:  # noqa: N802
        self.server.sandbox._get(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Quiet: the paths of real incoming webhooks are secrets, and tests read `received`.
        pass


class SandboxIncomingWebhook(LoopbackSandbox):
    """Incoming-webhook receiver on 127.0.0.1. Use as a context manager (or start/stop)."""

    handler_class = _Handler
    thread_name = "incoming-webhook-sandbox"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Iterable[str] = (),
        timeout_fault_seconds: float = DEFAULT_TIMEOUT_FAULT_SECONDS,
        on_post: Callable[[ReceivedPost], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_fault_seconds = timeout_fault_seconds
        self.on_post = on_post
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._received: list[ReceivedPost] = []
        self._attempts = 0
        self._init_server_state()
        self.inject(*faults)

    # -- control -----------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        """Queue faults, one per POST (e.g. ``inject("500")``: the next POST gets a 500)."""
        parsed = [_parse_fault(spec) for spec in faults]
        with self._lock:
            self._faults.extend(parsed)

    @property
    def received(self) -> list[ReceivedPost]:
        with self._lock:
            return list(self._received)

    @property
    def attempts(self) -> int:
        """Every POST, accepted, refused or faulted."""
        with self._lock:
            return self._attempts

    # -- request handling --------------------------------------------------------

    def _post(self, h: _Handler) -> None:
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            h.close_connection = True  # the unread body would corrupt the next request
            self._send(h, 413, "request_too_large")
            return
        raw = h.rfile.read(length) if length > 0 else b""
        with self._lock:
            self._attempts += 1
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(
                self.timeout_fault_seconds if fault.seconds is None else fault.seconds
            )
            h.close_connection = True
            return
        if fault is not None and fault.kind != "pass":
            status = int(fault.kind)
            headers = {"Retry-After": "1"} if status == 429 else {}
            self._send(h, status, "sandbox_fault", headers)
            return
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            self._send(h, 400, "invalid_payload")
            return
        assert isinstance(payload, dict)
        post = ReceivedPost(urlsplit(h.path).path, text, payload, time.time())
        with self._lock:
            self._received.append(post)
        if self.on_post is not None:
            self.on_post(post)
        self._send(h, 200, "ok")

    def _get(self, h: _Handler) -> None:
        if urlsplit(h.path).path != RECEIVED_PATH:
            self._send(h, 404, "no_service")
            return
        body = json.dumps([asdict(p) for p in self.received])
        self._send(h, 200, body, content_type="application/json")

    @staticmethod
    def _send(
        h: _Handler,
        status: int,
        body: str,
        headers: dict[str, str] | None = None,
        content_type: str = "text/plain",
    ) -> None:
        payload = body.encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", f"{content_type}; charset=utf-8")
            h.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True


# ---------------------------------------------------------------------------- CLI


def _summary(post: ReceivedPost) -> None:
    print(f"{post.path}: {post.text[:200]!r}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outreach_core.sandbox.incoming_webhook",
        description="Serve a sandbox Slack-compatible incoming webhook until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        help=f"queue a fault (repeatable): {', '.join(FAULT_KINDS)}",
    )
    args = parser.parse_args(argv)
    with SandboxIncomingWebhook(
        host=args.host, port=args.port, faults=args.fault, on_post=_summary
    ) as sandbox:
        serve_until_stopped(sandbox.base_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

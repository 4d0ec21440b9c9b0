"""A fake OpenAI-compatible chat-completions server, deterministic, on loopback.

Endpoints:

* ``POST /v1/chat/completions`` -> a ``chat.completion`` object with ``n`` choices
* ``GET  /v1/models``           -> the one model it pretends to serve

Answers are SMS-sized replies assembled from canned, persona-like sentences; a hash of the
request's model, messages and choice index picks them, so two sandboxes (or two runs) answer
the same request identically and the ``n`` choices differ from each other. A first name given
on a ``First name: ...`` line of any message is used in the greeting, which is the convention
outreach_core.replies.drafts follows in its prompts.

Faults for tests, queued with ``inject()`` (or ``--fault``) and consumed one per request that
passed the key check: an HTTP status (``500``), ``timeout[:secs]`` (hang past the client's
timeout, then hang up), ``malformed`` (a 200 whose body is not JSON), ``no_choices`` (valid JSON
without choices) and ``pass``. With ``api_key`` set, requests need ``Authorization: Bearer
<key>`` or get OpenAI's 401.

Only the standard library is used, so it starts in milliseconds in tests and under ``make dev``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = [
    "CHAT_COMPLETIONS_PATH",
    "FAULT_KINDS",
    "MODELS_PATH",
    "SANDBOX_MODEL",
    "SandboxLlm",
    "complete",
    "main",
]

from outreach_core.sandbox.http_server import LoopbackSandbox, SandboxServer, serve_until_stopped

logger = logging.getLogger(__name__)

CHAT_COMPLETIONS_PATH: Final = "/v1/chat/completions"
MODELS_PATH: Final = "/v1/models"
SANDBOX_MODEL: Final = "sandbox-sms-1"
MAX_BODY_BYTES: Final = 1_000_000
# OpenAI caps n at 128; a sandbox has no reason to build more than a handful.
MAX_CHOICES: Final = 8
DEFAULT_TIMEOUT_FAULT_SECONDS: Final = 10.0

FAULT_KINDS: Final = ("pass", "<3-digit status>", "timeout[:secs]", "malformed", "no_choices")

_FIRST_NAME = re.compile(r"^\s*first[ _]name\s*:\s*([A-Za-z][A-Za-z' -]{0,29})\s*$", re.I | re.M)

_OPENERS: Final = (
    "Thanks for getting back to me{name}!",
    "Great to hear from you{name}.",
    "Appreciate the reply{name}!",
    "Thanks so much{name}.",
    "Happy to help{name}!",
)
_MIDDLES: Final = (
    "I can send the details over whenever suits you.",
    "It only takes a couple of minutes to go through.",
    "No pressure at all, I just want you to have the full picture.",
    "A quick call is often the easiest way to cover it.",
    "I'll keep it short and useful, promise.",
)
_CLOSERS: Final = (
    "What's the best email to send it to?",
    "Would a quick call this week work?",
    "Does that sound helpful?",
    "Just let me know what works for you.",
    "What time suits you best?",
)


def _unit(key: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _pick(key: str, salt: str, items: Sequence[str]) -> str:
    return items[int(_unit(key, salt) * len(items))]


def _first_name(messages: Sequence[Mapping[str, Any]]) -> str | None:
    for message in messages:
        content = message.get("content")
        match = _FIRST_NAME.search(content) if isinstance(content, str) else None
        if match:
            return match.group(1).strip()
    return None


def complete(model: str, messages: Sequence[Mapping[str, Any]], n: int = 1) -> list[str]:
    """The sandbox's answer texts for a request, without a request (pure, deterministic)."""
    key = json.dumps([model, list(messages)], sort_keys=True, default=str)
    name = _first_name(messages)
    greeting = f", {name}" if name else ""
    texts: list[str] = []
    attempt = 0
    # 125 combinations: distinct choices are always found for n <= MAX_CHOICES.
    while len(texts) < n:
        salt = f"choice{attempt}"
        text = " ".join(
            (
                _pick(key, salt + "o", _OPENERS).format(name=greeting),
                _pick(key, salt + "m", _MIDDLES),
                _pick(key, salt + "c", _CLOSERS),
            )
        )
        if text not in texts:
            texts.append(text)
        attempt += 1
    return texts


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
    if kind in {"pass", "malformed", "no_choices"} and not arg:
        return _Fault(kind)
    raise ValueError(f"unknown fault {spec!r}; expected one of {', '.join(FAULT_KINDS)}")


class _Reply(Exception):
    """Short-circuits request handling with an OpenAI-shaped JSON error."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Abort(Exception):
    """The response was already sent, or deliberately withheld."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LlmSandbox/1.0"
    server: SandboxServer

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        self.server.sandbox._handle(self, "POST")

    def do_GET(self) -> None:  # noqa: N802
        self.server.sandbox._handle(self, "GET")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Request lines only (never headers, which carry the key), and not to stderr.
        logger.debug("llm sandbox: " + format, *args)


class SandboxLlm(LoopbackSandbox):
    """Fake chat-completions server on 127.0.0.1. Use as a context manager (or start/stop).

    `received` keeps every request body that parsed as JSON, in order, for assertions.
    """

    handler_class = _Handler
    thread_name = "llm-sandbox"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        latency: float = 0.0,
        faults: Iterable[str] = (),
        timeout_fault_seconds: float = DEFAULT_TIMEOUT_FAULT_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.latency = latency
        self.timeout_fault_seconds = timeout_fault_seconds
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._received: list[dict[str, Any]] = []
        self._unauthorized = 0
        self._init_server_state()
        self.inject(*faults)

    # -- lifecycle ---------------------------------------------------------------

    # -- control -----------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        """Queue faults, one per request; see FAULT_KINDS (e.g. ``inject("pass", "500")``)."""
        parsed = [_parse_fault(spec) for spec in faults]
        with self._lock:
            self._faults.extend(parsed)

    @property
    def faults_pending(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._received)

    @property
    def unauthorized(self) -> int:
        with self._lock:
            return self._unauthorized

    def reset(self) -> None:
        """Drop queued faults and recorded requests; keep settings."""
        with self._lock:
            self._faults.clear()
            self._received.clear()
            self._unauthorized = 0

    # -- request handling --------------------------------------------------------

    def _handle(self, h: _Handler, method: str) -> None:
        path = urlsplit(h.path).path.rstrip("/")
        try:
            raw = self._read_body(h)
            if self.latency > 0:
                self._stopping.wait(self.latency)
            status, payload = self._route(h, method, path, raw)
        except _Reply as reply:
            status, payload = reply.status, json.dumps(reply.body).encode()
        except _Abort:
            return
        self._send(h, status, payload, "application/json")

    @staticmethod
    def _read_body(h: _Handler) -> bytes:
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            h.close_connection = True  # the unread body would corrupt the next request
            raise _Reply(413, "request body too large", "invalid_request_error")
        return h.rfile.read(length) if length > 0 else b""

    def _route(self, h: _Handler, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
        if path not in (CHAT_COMPLETIONS_PATH, MODELS_PATH):
            raise _Reply(404, f"no route for {method} {path}", "invalid_request_error")
        self._check_key(h)
        if path == MODELS_PATH:
            if method != "GET":
                raise _Reply(405, "method not allowed", "invalid_request_error")
            models = {"object": "list", "data": [{"id": SANDBOX_MODEL, "object": "model"}]}
            return 200, json.dumps(models).encode()
        if method != "POST":
            raise _Reply(405, "method not allowed", "invalid_request_error")
        request = self._parse_request(raw)
        fault = self._next_fault()
        if fault is not None:
            self._apply_fault(h, fault)  # raises unless it only alters the answer
        return 200, json.dumps(self._completion(request, fault)).encode()

    def _check_key(self, h: _Handler) -> None:
        if self.api_key is None:
            return
        scheme, _, given = (h.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.api_key.encode()
        ):
            with self._lock:
                self._unauthorized += 1
            raise _Reply(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )

    def _parse_request(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict):
            raise _Reply(400, "the body must be a JSON object", "invalid_request_error")
        with self._lock:
            self._received.append(body)
        model, messages, n = body.get("model"), body.get("messages"), body.get("n", 1)
        if not isinstance(model, str) or not model:
            raise _Reply(400, "you must provide a model parameter", "invalid_request_error")
        if not isinstance(messages, list) or not messages:
            raise _Reply(400, "messages must be a non-empty array", "invalid_request_error")
        for index, message in enumerate(messages):
            if not (
                isinstance(message, dict)
                and message.get("role") in {"system", "user", "assistant"}
                and isinstance(message.get("content"), str)
            ):
                raise _Reply(
                    400,
                    f"messages[{index}] needs a role and string content",
                    "invalid_request_error",
                )
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES:
            raise _Reply(
                400, f"n must be an integer from 1 to {MAX_CHOICES}", "invalid_request_error"
            )
        return body

    def _completion(self, request: Mapping[str, Any], fault: _Fault | None) -> dict[str, Any]:
        model, messages, n = request["model"], request["messages"], request.get("n", 1)
        texts = (
            [] if fault is not None and fault.kind == "no_choices" else complete(model, messages, n)
        )
        key = json.dumps([model, messages], sort_keys=True)
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        completion_tokens = sum(len(t.split()) for t in texts)
        return {
            "id": "chatcmpl-" + hashlib.sha256(key.encode()).hexdigest()[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
                for index, text in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        return None if fault is None or fault.kind == "pass" else fault

    def _apply_fault(self, h: _Handler, fault: _Fault) -> None:
        if fault.kind == "no_choices":
            return
        if fault.kind.isdigit():
            raise _Reply(int(fault.kind), f"sandbox injected HTTP {fault.kind}", "server_error")
        if fault.kind == "timeout":
            # Sleep past the client's timeout, then hang up without answering.
            self._stopping.wait(
                self.timeout_fault_seconds if fault.seconds is None else fault.seconds
            )
            h.close_connection = True
            raise _Abort
        if fault.kind == "malformed":
            self._send(h, 200, b'{"choices": [{"message": {"content": "Hi th', "application/json")
            raise _Abort
        raise AssertionError(fault.kind)  # _parse_fault admits nothing else

    @staticmethod
    def _send(h: _Handler, status: int, payload: bytes, content_type: str) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", f"{content_type}; charset=utf-8")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True


# ---------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outreach_core.sandbox.llm",
        description="Serve a fake OpenAI-compatible chat-completions API until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="require this bearer key (default: none)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        help=f"queue a fault (repeatable): {', '.join(FAULT_KINDS)}",
    )
    args = parser.parse_args(argv)

    with SandboxLlm(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        latency=args.latency,
        faults=args.fault,
    ) as sandbox:
        serve_until_stopped(sandbox.base_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

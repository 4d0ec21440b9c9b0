"""What every HTTP sandbox shares: a threading server on loopback that shrugs off peers
hanging up, served from a daemon thread, started and stopped once, usable as a context
manager, with its base URL."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self

logger = logging.getLogger(__name__)


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Clients open many connections at once (a send engine, sixteen threads of a test); the
    # default backlog of 5 drops SYNs (a second of retransmission each) or, under load,
    # resets connections.
    request_queue_size = 128
    # The sandbox the handlers answer for (set by LoopbackSandbox.start).
    sandbox: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Faults deliberately break connections; a peer hanging up is not a sandbox bug.
        logger.debug("sandbox: connection error from %s", client_address, exc_info=True)


class LoopbackSandbox:
    """Lifecycle of a sandbox: subclasses name their server and handler classes and set
    `host`, `port` and call `_init_server_state()` in their constructor."""

    server_class: ClassVar[type[SandboxServer]] = SandboxServer
    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    thread_name: ClassVar[str]
    host: str
    port: int

    def _init_server_state(self) -> None:
        # Set while stopping: wakes handlers parked in latency or timeout faults.
        self._stopping = threading.Event()
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None

    def _before_start(self) -> None:
        """Hook: what must run before the first request is served."""

    def _after_stop(self) -> None:
        """Hook: what to stop once no request is served any more."""

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._before_start()
        server = self.server_class((self.host, self.port), self.handler_class)
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        self._after_stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


def serve_until_stopped(url: str) -> None:
    """For a sandbox's `python -m` entry: print `url` as the first stdout line (how
    `make dev` and the tests learn the port), then serve until SIGTERM or Ctrl-C."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while not done.wait(0.5):
            pass

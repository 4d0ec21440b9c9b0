"""A sandbox SMTP server on loopback that keeps what it receives, for email deliverables.

Built on aiosmtpd's threaded ``Controller``: it speaks real SMTP (EHLO, optional AUTH, MAIL,
RCPT, DATA), so the code under test uses ``smtplib`` exactly as against a real server. Each
accepted message is parsed into an ``EmailMessage`` and kept in memory with its envelope;
``wait_for`` blocks until enough have arrived. For tests it can refuse chosen recipients
(``refuse_recipient``: 550 for a permanent refusal, 451 for greylisting) and answer every DATA
with a chosen code (``fail_data``).

aiosmtpd's ``Controller`` cannot listen on port 0 (it connects to its own port to check it is
up), so a free port is picked first and the server started on it, retrying with another port if
something took it in between.

Run ``python -m outreach_core.sandbox.smtp``: the first stdout line is ``smtp://HOST:PORT``;
a line per received message goes to stderr.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any, Final, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "REPLY_TEXTS",
    "ReceivedEmail",
    "Refusal",
    "SandboxSmtp",
    "free_port",
    "main",
]

from outreach_core.sandbox.http_server import serve_until_stopped

logger = logging.getLogger(__name__)

SERVER_HOSTNAME: Final = "sandbox-smtp.local"
START_ATTEMPTS: Final = 5

# Enhanced status texts a real server would give for the codes tests ask for.
REPLY_TEXTS: Final[Mapping[int, str]] = {
    421: "4.3.2 Service shutting down, try again later",
    450: "4.2.1 Mailbox temporarily unavailable",
    451: "4.7.1 Greylisted, please try again later",
    452: "4.2.2 Mailbox full",
    550: "5.1.1 Mailbox does not exist",
    552: "5.3.4 Message too big",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Message rejected",
}


@dataclass(frozen=True)
class ReceivedEmail:
    """One accepted message: the envelope as the client gave it and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    peer: str
    received_at: float

    def header(self, name: str) -> str | None:
        value = self.message[name]
        return None if value is None else str(value)


@dataclass(frozen=True)
class Refusal:
    """A refusal the sandbox answered with, so tests can tell it was the server that said no."""

    stage: Literal["rcpt", "data"]
    address: str | None  # the refused recipient at "rcpt"; None at "data"
    code: int


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (it may be taken by the time it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _reply(code: int) -> str:
    return f"{code} {REPLY_TEXTS.get(code, 'Refused by the sandbox')}"


def _checked_code(code: int) -> int:
    if not 400 <= code < 600:
        raise ValueError(f"a refusal needs a 4xx or 5xx code, got {code}")
    return code


class _Handler:
    """aiosmtpd's hooks (it finds them by these names); they run on the server's event-loop
    thread and only touch the sandbox through its locked methods."""

    def __init__(self, sandbox: SandboxSmtp) -> None:
        self._sandbox = sandbox

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self._sandbox._count_session()
        session.host_name = hostname
        return responses

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        self._sandbox._count_session()
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self._sandbox._auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        code = self._sandbox._recipient_code(address)
        if code is not None:
            return _reply(code)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        code = self._sandbox._data_code()
        if code is not None:
            return _reply(code)
        self._sandbox._receive(envelope, session.peer)
        return "250 2.0.0 Message accepted"


class SandboxSmtp:
    """SMTP server on loopback that records what it accepts and refuses on request.

    Use as a context manager (or ``start()``/``stop()``). ``host`` and ``port`` say where it
    listens once started. Refusals can be changed while it runs. With ``credentials``, clients
    must AUTH (PLAIN or LOGIN, allowed without TLS: this is a sandbox) before MAIL.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        refuse_recipients: Mapping[str, int] | None = None,
        data_code: int | None = None,
        credentials: tuple[str, str] | None = None,
        on_message: Callable[[ReceivedEmail], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._credentials = credentials
        self._on_message = on_message
        self.clock = clock
        self._changed = threading.Condition()
        self._received: list[ReceivedEmail] = []
        self._refusals: list[Refusal] = []
        self._sessions = 0
        self._refuse: dict[str, int] = {}
        self._data_reply: int | None = None
        self._controller: Controller | None = None
        self._port: int | None = None
        for address, code in (refuse_recipients or {}).items():
            self.refuse_recipient(address, code)
        self.fail_data(data_code)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> SandboxSmtp:
        if self._controller is not None:
            return self
        # An explicitly requested port is the caller's to get right: no retrying elsewhere.
        attempts = START_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port(self.host)
            controller = self._controller_for(port)
            try:
                controller.start()
            except OSError as exc:
                _discard(controller)
                if exc.errno != errno.EADDRINUSE or attempt == attempts:
                    raise
                continue
            self._controller, self._port = controller, port
            return self
        raise AssertionError("unreachable")  # the loop returns or raises

    def stop(self) -> None:
        controller = self._controller
        if controller is None:
            return
        controller.stop()
        self._controller = self._port = None

    def __enter__(self) -> SandboxSmtp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _auth_required(self) -> bool:
        return self._credentials is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("sandbox is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def _controller_for(self, port: int) -> Controller:
        options: dict[str, Any] = {}
        if self._credentials is not None:
            # AUTH is offered without TLS, and required by handle_MAIL rather than by
            # aiosmtpd's auth_required, which warns about exactly this on every connection.
            options = {"auth_require_tls": False, "authenticator": self._authenticate}
            _AIOSMTPD_LOG.addFilter(_drop_login_data_deprecation)
        return Controller(
            _Handler(self),
            hostname=self.host,
            port=port,
            # aiosmtpd would otherwise resolve the machine's FQDN for its greeting.
            server_hostname=SERVER_HOSTNAME,
            **options,
        )

    # -- control -----------------------------------------------------------------

    def refuse_recipient(self, address: str, code: int = 550) -> None:
        """Answer RCPT TO `address` with `code` (550: no such mailbox; 451: greylisted)."""
        with self._changed:
            self._refuse[address.strip().lower()] = _checked_code(code)

    def accept_recipient(self, address: str) -> None:
        with self._changed:
            self._refuse.pop(address.strip().lower(), None)

    def fail_data(self, code: int | None) -> None:
        """Answer every DATA with `code` until called with None."""
        with self._changed:
            self._data_reply = None if code is None else _checked_code(code)

    def reset(self) -> None:
        """Forget what was received, refused and counted; keep the refusal settings."""
        with self._changed:
            self._received.clear()
            self._refusals.clear()
            self._sessions = 0

    # -- what happened -----------------------------------------------------------

    @property
    def received(self) -> list[ReceivedEmail]:
        with self._changed:
            return list(self._received)

    @property
    def refusals(self) -> list[Refusal]:
        with self._changed:
            return list(self._refusals)

    @property
    def sessions(self) -> int:
        """Clients that said EHLO or HELO (the start-up self-check does not count)."""
        with self._changed:
            return self._sessions

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedEmail]:
        """Every message received once there are at least `count`; TimeoutError if there are
        still fewer after `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout}s, got {len(self._received)}"
                )
            return list(self._received)

    # -- called from the server thread -------------------------------------------

    def _count_session(self) -> None:
        with self._changed:
            self._sessions += 1

    def _recipient_code(self, address: str) -> int | None:
        with self._changed:
            code = self._refuse.get(address.strip().lower())
            if code is not None:
                self._refusals.append(Refusal(stage="rcpt", address=address, code=code))
            return code

    def _data_code(self) -> int | None:
        with self._changed:
            code = self._data_reply
            if code is not None:
                self._refusals.append(Refusal(stage="data", address=None, code=code))
            return code

    def _receive(self, envelope: Envelope, peer: Any) -> None:
        raw = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)  # what policy.default's factory builds
        received = ReceivedEmail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=message,
            raw=raw,
            peer=":".join(str(part) for part in peer[:2]) if peer else "",
            received_at=self.clock(),
        )
        with self._changed:
            self._received.append(received)
            self._changed.notify_all()
        if self._on_message is not None:
            try:
                self._on_message(received)
            except Exception:
                # The message is accepted and recorded: a failing observer must not turn the
                # reply into an error the client would retry.
                logger.exception("sandbox SMTP on_message callback failed")

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        expected = self._credentials
        ok = (
            expected is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == expected
        )
        # handled=False lets aiosmtpd answer 535 itself on failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


_AIOSMTPD_LOG: Final = logging.getLogger("mail.log")


def _drop_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd 1.4 logs this warning from its own AUTH code on every successful login.
    return "login_data is deprecated" not in record.getMessage()


def _discard(controller: Controller) -> None:
    # A controller whose server never bound: its thread has ended, its loop was never closed.
    controller.stop(no_assert=True)
    if not controller.loop.is_closed():
        controller.loop.close()


# ---------------------------------------------------------------------------- CLI


def _address_code(spec: str) -> tuple[str, int]:
    address, sep, code = spec.rpartition("=")
    if not sep or not address or not code.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDRESS=CODE, got {spec!r}")
    return address.strip(), int(code)


def _summary(received: ReceivedEmail) -> None:
    print(
        f"{received.mail_from} -> {', '.join(received.rcpt_tos)}: "
        f"{received.header('Subject')!r} {received.header('Message-ID')}",
        file=sys.stderr,
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outreach_core.sandbox.smtp",
        description="Serve a sandbox SMTP server until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--refuse",
        type=_address_code,
        action="append",
        default=[],
        metavar="ADDRESS=CODE",
        help="answer RCPT TO ADDRESS with CODE, e.g. 550 or 451 (repeatable)",
    )
    parser.add_argument("--data-code", type=int, default=None, help="answer every DATA with this")
    parser.add_argument("--username", default=None, help="require AUTH with these credentials")
    parser.add_argument("--password", default=None)
    args = parser.parse_args(argv)
    if (args.username is None) != (args.password is None):
        parser.error("--username and --password go together")
    credentials = None if args.username is None else (args.username, args.password)

    with SandboxSmtp(
        host=args.host,
        port=args.port,
        refuse_recipients=dict(args.refuse),
        data_code=args.data_code,
        credentials=credentials,
        on_message=_summary,
    ) as sandbox:
        serve_until_stopped(sandbox.url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

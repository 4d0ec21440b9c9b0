"""Emailing a deliverable: build the message (`compose`), hand it to an SMTP server (`send`).

Delivery guarantees. Over SMTP, at-most-once delivery cannot be had: the server may accept the
message and the connection drop before its "250" reaches us (we report a retryable error), or
the process may crash between `send` returning and the caller committing that the job is done.
Either way the job is sent again. What we can do is make the copies recognisable: the
Message-ID is derived from the job id alone (`<deliverable-{job_id}@outreach.local>`) and the job
id travels in an `X-Outreach-Job` header, so every attempt for one job carries the same
identity. Mail systems and clients that deduplicate on Message-ID collapse the copies, and a
reconciliation can match what the provider accepted to jobs. The caller should still record
"sending" before calling `send` and "sent" after, so a crash leaves a visible, small window.

Refusals are `EmailRefused` with `permanent` saying whether trying again could help:
- permanent: an invalid recipient address (checked before connecting), a 5xx refusal of the
  recipient (RCPT) or of the message itself (DATA);
- retryable: connection errors and timeouts, a lost connection, any 4xx (greylisting, a full
  mailbox, a busy server), and 5xx answers to the session itself (greeting, STARTTLS, AUTH,
  MAIL FROM). Those last are about our account or configuration, not this recipient: marking
  every job permanently failed because a password expired would lose them all, so they are
  retried (bounded by the caller's attempt limit) and should be alerted on; `code` says which.
"""

from __future__ import annotations

import copy
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr

from email_validator import EmailNotValidError, validate_email

from outreach_core.deliverables.catalogue import Deliverable

MESSAGE_ID_DOMAIN = "outreach.local"
JOB_HEADER = "X-Outreach-Job"
DELIVERABLE_HEADER = "X-Outreach-Deliverable"

# A Message-ID's left part must be a dot-atom; job ids (UUIDs, integers, slugs) fit this subset.
_JOB_ID = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_MAX_JOB_ID = 200


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str  # From address, bare or with a display name: "Outreach <mail@example.com>"
    username: str | None = None
    # Kept out of repr so a logged config never shows it.
    password: str | None = field(default=None, repr=False)
    # STARTTLS after EHLO; a server that does not offer it is an error, never a silent fallback
    # to plain text. Implicit TLS (port 465) is not supported.
    starttls: bool = False
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"SMTP port must be 1-65535, got {self.port}")
        if self.timeout_s <= 0:
            raise ValueError(f"SMTP timeout must be positive, got {self.timeout_s}")
        if "@" not in parseaddr(self.sender)[1]:
            raise ValueError(f"SMTP sender must be an email address, got {self.sender!r}")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password go together: set both or neither")

    @property
    def envelope_sender(self) -> str:
        return parseaddr(self.sender)[1]


class EmailRefused(Exception):
    """The email was not sent. `permanent`: retrying cannot help (bad or refused recipient,
    refused message); otherwise try again later. `code` is the SMTP reply code, if any."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


def checked_address(address: str) -> str:
    """`address` normalised for SMTP (ASCII domain), or EmailRefused(permanent=True).

    Non-ASCII local parts are refused: they need SMTPUTF8 on every hop, which we cannot count
    on, and a lead's typed address with one is far more often a typo than a real mailbox."""
    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise EmailRefused(
            f"invalid recipient address {address!r}: {exc}", permanent=True
        ) from None
    return valid.ascii_email or valid.normalized


def message_id_for(job_id: str, domain: str = MESSAGE_ID_DOMAIN) -> str:
    """The Message-ID every attempt for `job_id` carries."""
    if len(job_id) > _MAX_JOB_ID or not _JOB_ID.fullmatch(job_id):
        raise ValueError(
            f"job id {job_id!r} cannot go in a Message-ID: use letters, digits, '-', '_' "
            f"and single dots, at most {_MAX_JOB_ID} characters"
        )
    return f"<deliverable-{job_id}@{domain}>"


def compose(
    deliverable: Deliverable,
    *,
    to: str,
    first_name: str | None,
    team_name: str,
    job_id: str,
    message_id_domain: str = MESSAGE_ID_DOMAIN,
) -> EmailMessage:
    """The email for one job, without From and Date (`send` adds them from its config and the
    clock), so composing needs no clock and every attempt for a job has the same headers.

    Raises EmailRefused(permanent=True) for an invalid `to`, ValueError for a blank
    `team_name` or a job id that cannot go in a Message-ID."""
    recipient = checked_address(to)
    rendered = deliverable.render(first_name=first_name, team_name=team_name)
    message = EmailMessage()
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Message-ID"] = message_id_for(job_id, message_id_domain)
    message[JOB_HEADER] = job_id
    message[DELIVERABLE_HEADER] = deliverable.id
    # Quoted-printable keeps the body 7-bit, so no hop needs 8BITMIME for a curly quote.
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message


def send(config: SmtpConfig, message: EmailMessage) -> str:
    """Send `message` to its one recipient; return its Message-ID. Raises EmailRefused.

    The recipient is validated before connecting. `message` is not modified: From (from
    `config.sender`) and Date are added to a copy when missing."""
    message_id = _message_id(message)
    recipient = _single_recipient(message)
    outgoing = _with_sender_and_date(message, config)
    smtp = smtplib.SMTP(timeout=config.timeout_s)
    try:
        _open_session(smtp, config)
        smtp.send_message(outgoing, from_addr=config.envelope_sender, to_addrs=[recipient])
    except (smtplib.SMTPException, OSError) as exc:
        smtp.close()  # no polite QUIT: after a timeout it would only wait for another one
        raise refusal_from(exc) from exc
    _quit_quietly(smtp)
    return message_id


def refusal_from(exc: smtplib.SMTPException | OSError) -> EmailRefused:
    """Classify an smtplib or socket error (see the module docstring for the rules)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.items())
        codes = [code for _, (code, _) in replies]
        detail = "; ".join(f"{addr}: {code} {_text(reply)}" for addr, (code, reply) in replies)
        permanent = bool(codes) and all(_is_permanent(code) for code in codes)
        return EmailRefused(
            f"recipient refused ({detail})", permanent=permanent, code=codes[0] if codes else None
        )
    if isinstance(exc, smtplib.SMTPDataError):
        return EmailRefused(
            f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}",
            permanent=_is_permanent(exc.smtp_code),
            code=exc.smtp_code,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        stage = type(exc).__name__.removeprefix("SMTP")
        return EmailRefused(
            f"server refused the session ({stage}): {exc.smtp_code} {_text(exc.smtp_error)}",
            permanent=False,
            code=exc.smtp_code,
        )
    return EmailRefused(f"SMTP failed: {type(exc).__name__}: {exc}", permanent=False)


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _message_id(message: EmailMessage) -> str:
    value = message["Message-ID"]
    if not value:
        # Without a stable Message-ID a resend could not be recognised; see the docstring.
        raise ValueError("message has no Message-ID: build it with compose()")
    return str(value).strip()


def _single_recipient(message: EmailMessage) -> str:
    headers = [str(value) for name in ("To", "Cc", "Bcc") for value in message.get_all(name, [])]
    addresses = [address for _, address in getaddresses(headers) if address]
    # One recipient keeps refusals unambiguous: with several, a partial refusal would leave the
    # job half sent, and a retry would send the accepted copies again.
    if len(addresses) > 1 or not headers:
        raise ValueError(f"a deliverable goes to exactly one recipient, got {headers}")
    # A header that parses to no address at all is a bad address, not a missing one.
    return checked_address(addresses[0] if addresses else ", ".join(headers))


def _with_sender_and_date(message: EmailMessage, config: SmtpConfig) -> EmailMessage:
    outgoing = copy.deepcopy(message)
    if "From" not in outgoing:
        outgoing["From"] = config.sender
    if "Date" not in outgoing:
        outgoing["Date"] = format_datetime(datetime.now(UTC))
    return outgoing


def _open_session(smtp: smtplib.SMTP, config: SmtpConfig) -> None:
    smtp.connect(config.host, config.port)
    # Unlike ehlo(), this raises on a refused greeting instead of carrying on regardless.
    smtp.ehlo_or_helo_if_needed()
    if config.starttls:
        smtp.starttls(context=ssl.create_default_context())
        smtp.ehlo_or_helo_if_needed()  # the pre-TLS EHLO does not count after STARTTLS
    if config.username is not None and config.password is not None:
        smtp.login(config.username, config.password)


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    # The message is accepted by now: a failed goodbye must not turn it into a retry.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()

"""Email deliverables: the catalogue, composing the email, and sending it over real SMTP on
loopback to the sandbox server, including its refusals."""

from __future__ import annotations

import copy
import errno
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from importlib import resources
from typing import Any

import pytest
import yaml

from outreach_core.deliverables.catalogue import (
    CATALOGUE_RESOURCE,
    PACKAGE,
    CatalogueError,
    Deliverable,
    deliverable_for,
    load_catalogue,
    parse_catalogue,
    read_catalogue,
)
from outreach_core.deliverables.email import (
    DELIVERABLE_HEADER,
    JOB_HEADER,
    EmailRefused,
    SmtpConfig,
    compose,
    send,
)
from outreach_core.sandbox import smtp as smtp_sandbox
from outreach_core.sandbox.smtp import SandboxSmtp, free_port

LEAD = "lead@example.com"
SENDER = "Outreach <deliverables@outreach.example>"
EXPECTED = {
    "homeowner-advisor": ("property-valuation-report", "valuation"),
    "ecbb": ("exit-preparation", "content"),
    "outreachglobal": ("white-label-pitch", "sales"),
    "nextier": ("user-to-owner-pitch", "sales"),
}
_PLACEHOLDER = re.compile(r"[{}]")


@pytest.fixture
def sandbox() -> Iterator[SandboxSmtp]:
    with SandboxSmtp() as server:
        yield server


def _config(server: SandboxSmtp, **overrides: Any) -> SmtpConfig:
    return SmtpConfig(host=server.host, port=server.port, sender=SENDER, **overrides)


def _message(job_id: str = "job-1", to: str = LEAD) -> EmailMessage:
    return compose(
        deliverable_for("ecbb"), to=to, first_name="Ann", team_name="Acme Realty", job_id=job_id
    )


def _raw_catalogue() -> dict[str, Any]:
    text = resources.files(PACKAGE).joinpath(CATALOGUE_RESOURCE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


# --- the catalogue ----------------------------------------------------------------------------


def test_catalogue_covers_the_four_clients() -> None:
    catalogue = load_catalogue()
    assert load_catalogue() is catalogue  # read once per process
    assert set(catalogue.clients) == set(EXPECTED)
    for client, (deliverable_id, queue) in EXPECTED.items():
        deliverable = deliverable_for(client)
        assert (deliverable.client, deliverable.id, deliverable.queue) == (
            client,
            deliverable_id,
            queue,
        )
        assert deliverable.title


def test_client_lookup_tolerates_case_and_spaces() -> None:
    assert deliverable_for(" ECBB ").id == "exit-preparation"


def test_unknown_client_is_rejected_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown client 'acme'") as info:
        deliverable_for("acme")
    for client in EXPECTED:
        assert client in str(info.value)


BAD_ENTRIES = [
    (("clients", "ecbb", "subject"), "Hi {first_name}", r"clients\.ecbb\.subject: unknown .*"),
    (("clients", "ecbb", "text"), "{greeting} {frist_name}", r"unknown .*\{frist_name\}"),
    (("clients", "ecbb", "html"), "<p>{greeting.__class__}</p>", r"must be a plain \{name\}"),
    (("clients", "ecbb", "html"), "<style>p {color: red}</style>", r"clients\.ecbb\.html: "),
    (("clients", "ecbb", "text"), "Hello {greeting", r"not a valid template"),
    (("clients", "ecbb", "subject"), "two\nlines", r"clients\.ecbb\.subject: .*single line"),
    (("clients", "nextier", "queue"), "Sales Team", r"clients\.nextier\.queue: "),
    (("clients", "ecbb", "id"), "white-label-pitch", r"used by both 'ecbb' and 'outreachglobal'"),
    (("clients", "ecbb", "attachment"), "guide.pdf", r"clients\.ecbb\.attachment: Extra"),
    (("clients", "Big Client"), None, r"clients: client name\(s\) \['Big Client'\]"),
    (("greeting", "named"), "Hi there,", r"greeting\.named: must contain \{first_name\}"),
    (("greeting", "unnamed"), "Hi {first_name},", r"greeting\.unnamed: unknown placeholder"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_ENTRIES)
def test_malformed_catalogue_is_rejected_naming_the_entry(
    path: tuple[str, ...], value: Any, message: str
) -> None:
    document = _raw_catalogue()
    target = document
    for key in path[:-1]:
        target = target[key]
    # `None` copies an existing entry under a new name.
    target[path[-1]] = copy.deepcopy(document["clients"]["ecbb"]) if value is None else value
    with pytest.raises(CatalogueError, match=message) as info:
        parse_catalogue(document)
    assert str(info.value).startswith("catalogue.yaml: ")


def test_missing_field_is_named() -> None:
    document = _raw_catalogue()
    del document["clients"]["homeowner-advisor"]["html"]
    with pytest.raises(CatalogueError, match=r"clients\.homeowner-advisor\.html: Field required"):
        parse_catalogue(document)


@pytest.mark.parametrize("document", [None, [], {"greeting": {"named": "{first_name}"}}])
def test_catalogue_document_shape_is_checked(document: Any) -> None:
    with pytest.raises(CatalogueError, match=r"^catalogue\.yaml: "):
        parse_catalogue(document)


def test_invalid_yaml_is_rejected() -> None:
    with pytest.raises(CatalogueError, match=r"^custom\.yaml: not valid YAML"):
        read_catalogue("clients: [unclosed", "custom.yaml")


# --- composing --------------------------------------------------------------------------------


@pytest.mark.parametrize("client", sorted(EXPECTED))
def test_render_with_a_first_name(client: str) -> None:
    deliverable = deliverable_for(client)
    rendered = deliverable.render(first_name="Ann", team_name="Acme Realty")
    for part in (rendered.subject, rendered.text, rendered.html):
        assert not _PLACEHOLDER.search(part), part
    assert rendered.text.startswith("Hi Ann,")
    assert "<p>Hi Ann,</p>" in rendered.html
    assert "Acme Realty" in rendered.text and "Acme Realty" in rendered.html
    assert deliverable.title in rendered.text and deliverable.title in rendered.html
    assert "\n" not in rendered.subject


@pytest.mark.parametrize("client", sorted(EXPECTED))
@pytest.mark.parametrize("first_name", [None, "", "   "])
def test_render_without_a_first_name_greets_neutrally(client: str, first_name: str | None) -> None:
    rendered = deliverable_for(client).render(first_name=first_name, team_name="Acme Realty")
    for part in (rendered.subject, rendered.text, rendered.html):
        assert not _PLACEHOLDER.search(part), part
        assert "Hi ," not in part and "None" not in part
    assert rendered.text.startswith("Hello,")
    assert "<p>Hello,</p>" in rendered.html


def test_render_escapes_html_and_flattens_whitespace() -> None:
    rendered = deliverable_for("ecbb").render(
        first_name=" Ann\r\n<script>", team_name="Smith &  Sons\n"
    )
    assert rendered.text.startswith("Hi Ann <script>,")
    assert "&lt;script&gt;" in rendered.html and "<script>" not in rendered.html
    assert "Smith &amp; Sons" in rendered.html
    assert rendered.subject == "Your Exit Preparation Guide from Smith & Sons"


def test_render_needs_a_team_name() -> None:
    with pytest.raises(ValueError, match="team_name"):
        deliverable_for("ecbb").render(first_name="Ann", team_name="  ")


def test_compose_sets_the_job_identity() -> None:
    message = compose(
        deliverable_for("homeowner-advisor"),
        to="Lead@Example.COM",
        first_name=None,
        team_name="Acme Realty",
        job_id="0b9c6f1e-6a5e-4d0a-9a51-3b1f1c2d9e10",
    )
    assert message["To"] == "Lead@example.com"  # domain lower-cased, mailbox kept
    assert (
        message["Message-ID"] == "<deliverable-0b9c6f1e-6a5e-4d0a-9a51-3b1f1c2d9e10@outreach.local>"
    )
    assert message[JOB_HEADER] == "0b9c6f1e-6a5e-4d0a-9a51-3b1f1c2d9e10"
    assert message[DELIVERABLE_HEADER] == "property-valuation-report"
    assert message["Subject"] == "Your Property Valuation Report from Acme Realty"
    # From and Date come from send(): composing is pure.
    assert message["From"] is None and message["Date"] is None
    assert message.get_body(("plain",)).get_content().startswith("Hello,")
    assert "<p>Hello,</p>" in message.get_body(("html",)).get_content()


def test_compose_is_deterministic_per_job() -> None:
    first, second = _message("job-7"), _message("job-7")
    assert first["Message-ID"] == second["Message-ID"]
    assert _message("job-8")["Message-ID"] != first["Message-ID"]


@pytest.mark.parametrize("job_id", ["", "a b", "x@y", "a..b", ".a", "<a>", "j" * 201])
def test_compose_rejects_job_ids_that_cannot_go_in_a_message_id(job_id: str) -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        _message(job_id)


@pytest.mark.parametrize(
    "address", ["not-an-email", "lead@", "Ann <lead@example.com>", "josé@example.com", "a@b.local"]
)
def test_compose_refuses_invalid_addresses_permanently(address: str) -> None:
    with pytest.raises(EmailRefused) as info:
        _message(to=address)
    assert info.value.permanent


# --- sending over SMTP ------------------------------------------------------------------------


def test_send_delivers_over_smtp(sandbox: SandboxSmtp) -> None:
    message = _message("job-42")
    message_id = send(_config(sandbox), message)

    assert message_id == "<deliverable-job-42@outreach.local>"
    (received,) = sandbox.wait_for(1, timeout=5)
    assert received.mail_from == "deliverables@outreach.example"
    assert received.rcpt_tos == (LEAD,)
    assert received.header("Message-ID") == message_id
    assert received.header(JOB_HEADER) == "job-42"
    assert received.header(DELIVERABLE_HEADER) == "exit-preparation"
    assert received.header("From") == SENDER
    assert received.header("To") == LEAD
    assert received.header("Subject") == "Your Exit Preparation Guide from Acme Realty"
    assert received.message["Date"] is not None
    plain = received.message.get_body(("plain",)).get_content()
    html = received.message.get_body(("html",)).get_content()
    assert plain.startswith("Hi Ann,") and "Exit Preparation Guide" in plain
    assert "<strong>Exit Preparation Guide</strong>" in html
    assert sandbox.refusals == []
    # The caller's message is left as it was.
    assert message["From"] is None and message["Date"] is None


def test_a_resent_job_carries_the_same_identity(sandbox: SandboxSmtp) -> None:
    # What a crash between send and commit looks like on the receiving side.
    config = _config(sandbox)
    send(config, _message("job-9"))
    send(config, _message("job-9"))
    first, second = sandbox.wait_for(2)
    assert first.header("Message-ID") == second.header("Message-ID")
    assert first.header(JOB_HEADER) == second.header(JOB_HEADER) == "job-9"


def test_refused_recipient_is_permanent(sandbox: SandboxSmtp) -> None:
    sandbox.refuse_recipient(LEAD, 550)
    with pytest.raises(EmailRefused, match="550") as info:
        send(_config(sandbox), _message())
    assert info.value.permanent
    assert info.value.code == 550
    assert sandbox.received == []
    assert [(r.stage, r.code) for r in sandbox.refusals] == [("rcpt", 550)]


@pytest.mark.parametrize(
    ("stage", "code", "permanent"),
    [("rcpt", 451, False), ("rcpt", 452, False), ("data", 451, False), ("data", 554, True)],
)
def test_refusals_are_classified_by_code(
    sandbox: SandboxSmtp, stage: str, code: int, permanent: bool
) -> None:
    if stage == "rcpt":
        sandbox.refuse_recipient(LEAD, code)
    else:
        sandbox.fail_data(code)
    with pytest.raises(EmailRefused) as info:
        send(_config(sandbox), _message())
    assert (info.value.permanent, info.value.code) == (permanent, code)
    assert sandbox.received == []


def test_greylisted_message_goes_through_on_retry(sandbox: SandboxSmtp) -> None:
    sandbox.refuse_recipient(LEAD, 451)
    with pytest.raises(EmailRefused) as info:
        send(_config(sandbox), _message())
    assert not info.value.permanent
    sandbox.accept_recipient(LEAD)
    send(_config(sandbox), _message())
    assert len(sandbox.wait_for(1)) == 1


def test_server_down_is_retryable() -> None:
    config = SmtpConfig(host="127.0.0.1", port=free_port(), sender=SENDER, timeout_s=2)
    with pytest.raises(EmailRefused) as info:
        send(config, _message())
    assert not info.value.permanent
    assert info.value.code is None


def test_invalid_address_is_permanent_without_connecting(sandbox: SandboxSmtp) -> None:
    message = _message()
    message.replace_header("To", "lead@@example.com")
    with pytest.raises(EmailRefused, match="invalid recipient") as info:
        send(_config(sandbox), message)
    assert info.value.permanent
    assert sandbox.sessions == 0


def test_send_needs_exactly_one_recipient_and_a_message_id(sandbox: SandboxSmtp) -> None:
    message = _message()
    message["Cc"] = "other@example.com"
    with pytest.raises(ValueError, match="exactly one recipient"):
        send(_config(sandbox), message)
    message = _message()
    del message["Message-ID"]
    with pytest.raises(ValueError, match="Message-ID"):
        send(_config(sandbox), message)
    assert sandbox.sessions == 0


def test_login_with_credentials() -> None:
    with SandboxSmtp(credentials=("mailer", "s3cret")) as server:
        send(_config(server, username="mailer", password="s3cret"), _message())
        assert len(server.wait_for(1)) == 1
        # Configuration problems are retryable: they are not the recipient's fault.
        for overrides, code in (({"username": "mailer", "password": "wrong"}, 535), ({}, 530)):
            with pytest.raises(EmailRefused) as info:
                send(_config(server, **overrides), _message())
            assert (info.value.permanent, info.value.code) == (False, code)
        assert len(server.received) == 1


def test_starttls_is_never_skipped(sandbox: SandboxSmtp) -> None:
    with pytest.raises(EmailRefused, match="STARTTLS") as info:
        send(_config(sandbox, starttls=True), _message())
    assert not info.value.permanent
    assert sandbox.received == []


def test_config_hides_the_password_and_checks_itself() -> None:
    config = SmtpConfig(host="h", port=587, sender=SENDER, username="u", password="hunter2")
    assert "hunter2" not in repr(config)
    assert config.envelope_sender == "deliverables@outreach.example"
    for bad in ({"port": 0}, {"sender": "nobody"}, {"password": "p"}, {"timeout_s": 0}):
        with pytest.raises(ValueError):
            SmtpConfig(**{"host": "h", "port": 25, "sender": SENDER, **bad})


# --- the sandbox itself -----------------------------------------------------------------------


def test_wait_for_times_out(sandbox: SandboxSmtp) -> None:
    with pytest.raises(TimeoutError, match="expected 1 message"):
        sandbox.wait_for(1, timeout=0.05)


def test_sandbox_needs_to_be_running_for_a_port() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = SandboxSmtp().port


def test_sandbox_retries_when_its_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keeps the failed attempt short: aiosmtpd waits this long before reporting a bind error.
    monkeypatch.setenv("AIOSMTPD_CONTROLLER_TIMEOUT", "1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy, free_port()])
        monkeypatch.setattr(smtp_sandbox, "free_port", lambda host: next(ports))
        with SandboxSmtp() as server:
            assert server.port != busy
            send(_config(server), _message())
            assert len(server.wait_for(1)) == 1
        with pytest.raises(OSError) as info, SandboxSmtp(port=busy):
            pass
        assert info.value.errno == errno.EADDRINUSE


def test_sandbox_command_line() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "outreach_core.sandbox.smtp", "--refuse", "gone@example.com=550"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        match = re.fullmatch(r"smtp://127\.0\.0\.1:(\d+)", url)
        assert match, url
        config = SmtpConfig(host="127.0.0.1", port=int(match.group(1)), sender=SENDER)
        send(config, _message("cli-1"))
        with pytest.raises(EmailRefused) as info:
            send(config, _message(to="gone@example.com"))
        assert info.value.permanent
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "<deliverable-cli-1@outreach.local>" in stderr


def test_deliverable_is_a_plain_value() -> None:
    deliverable = deliverable_for("nextier")
    assert isinstance(deliverable, Deliverable)
    with pytest.raises(AttributeError):
        deliverable.id = "other"  # type: ignore[misc]

"""Reply drafting: stage detection, template drafts, service texts, and the LLM drafter against
the loopback sandbox over real HTTP. Pure apart from the sandbox: no database."""

from __future__ import annotations

import copy
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx
import pytest
import yaml

from outreach_core.messaging.segments import GSM_BASIC_CHARSET
from outreach_core.replies.classes import Client, ReplyClass, ReplyRulesError
from outreach_core.replies.drafts import (
    LEAD_VARIABLES,
    MAX_REPLY_CHARS,
    Draft,
    ServiceKind,
    client_ids,
    draft_reply,
    load_responder_templates,
    parse_personas,
    parse_responder_templates,
    persona_ids,
    service_text,
)
from outreach_core.replies.llm import LlmDrafter, LlmUnavailable, sms_text
from outreach_core.replies.stages import (
    HOT_INTENTS,
    INTENTS,
    NEUTRAL_INTENTS,
    OPT_OUT_INTENT,
    PUSHBACK_INTENTS,
    ConversationSnapshot,
    Stage,
    detect_stage,
)
from outreach_core.sandbox.llm import SANDBOX_MODEL, SandboxLlm, complete

PERSONA = "sabrina_default"
DRAFTABLE_INTENTS = sorted(INTENTS - {OPT_OUT_INTENT})
URL = re.compile(r"https?://|www\.|\.(com|net|org|io|ly)\b", re.IGNORECASE)
OFFER_WORDS = re.compile(r"\b(free|offer|discount|deal|save|win|prize|limited)\b|%|\$", re.I)
DEBRIS = re.compile(r"[{}\[\]]|\bNone\b|\bnull\b|, ?[,.!?]| [,.!?]")


def snapshot(**overrides: Any) -> ConversationSnapshot:
    values: dict[str, Any] = {
        "inbound_count": 1,
        "outbound_count": 1,
        "last_intent": None,
        "stage": None,
        "hours_since_last_outbound": 2.0,
    }
    return ConversationSnapshot(**(values | overrides))


FULL = snapshot(
    first_name="Sam",
    company="Acme Plumbing",
    property_address="12 Oak St",
    email="sam@acme.com",
)
EMPTY = snapshot()


def draft(**kwargs: Any) -> Draft:
    arguments: dict[str, Any] = {
        "client": "homeowner-advisor",
        "persona": PERSONA,
        "stage": Stage.COLD_OPEN,
        "intent": "question",
        "snapshot": FULL,
        "fields": {},
    }
    return draft_reply(**(arguments | kwargs))


def packaged(name: str) -> Any:
    text = resources.files("outreach_core.replies").joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


# ------------------------------------------------------------------- stage detection


@pytest.mark.parametrize(
    ("inbound", "outbound", "last_intent", "previous", "intent", "expected"),
    [
        # First reply to our opener.
        (1, 1, None, None, "question", Stage.COLD_OPEN),
        (1, 1, None, None, "other", Stage.COLD_OPEN),
        (1, 1, None, None, "thank-you", Stage.COLD_OPEN),
        (1, 0, None, None, "question", Stage.COLD_OPEN),  # they texted first
        # Positive intents are hot whatever came before.
        (1, 1, None, None, "interested", Stage.HOT_RESPONSE),
        (1, 1, None, None, "email-capture", Stage.HOT_RESPONSE),
        (1, 1, None, None, "called-phone-line", Stage.HOT_RESPONSE),
        (2, 4, "question", Stage.COLD_OPEN, "interested", Stage.HOT_RESPONSE),
        (3, 3, "not-interested", Stage.HANDLING_PUSHBACK, "email-capture", Stage.HOT_RESPONSE),
        # Pushback.
        (1, 1, None, None, "not-interested", Stage.HANDLING_PUSHBACK),
        (3, 3, "interested", Stage.HOT_RESPONSE, "not-interested", Stage.HANDLING_PUSHBACK),
        (1, 1, None, None, "opt-out", Stage.HANDLING_PUSHBACK),
        # A reply after a follow-up (more of ours than theirs).
        (1, 2, None, None, "question", Stage.FOLLOW_UP),
        (1, 3, None, None, "other", Stage.FOLLOW_UP),
        (2, 3, "interested", Stage.HOT_RESPONSE, "thank-you", Stage.FOLLOW_UP),
        # After an earlier positive.
        (2, 2, "interested", Stage.HOT_RESPONSE, "question", Stage.WARMING_UP),
        (2, 2, "email-capture", Stage.HOT_RESPONSE, "thank-you", Stage.WARMING_UP),
        (3, 3, "thank-you", Stage.WARMING_UP, "thank-you", Stage.WARMING_UP),
        (3, 3, "called-phone-line", None, "other", Stage.WARMING_UP),
        # Later neutral replies without any positive yet stay on the opener.
        (2, 2, "question", Stage.COLD_OPEN, "question", Stage.COLD_OPEN),
        (2, 2, "not-interested", Stage.HANDLING_PUSHBACK, "question", Stage.COLD_OPEN),
        # More of theirs than ours (they double-texted) is no follow-up.
        (3, 1, "question", Stage.COLD_OPEN, "other", Stage.COLD_OPEN),
    ],
)
def test_detect_stage(
    inbound: int,
    outbound: int,
    last_intent: str | None,
    previous: Stage | None,
    intent: str,
    expected: Stage,
) -> None:
    snap = snapshot(
        inbound_count=inbound, outbound_count=outbound, last_intent=last_intent, stage=previous
    )
    assert detect_stage(snap, intent) is expected


def test_every_reply_class_has_one_group() -> None:
    groups = (HOT_INTENTS, PUSHBACK_INTENTS, NEUTRAL_INTENTS)
    assert set().union(*groups) == set(ReplyClass) == INTENTS
    assert sum(len(g) for g in groups) == len(ReplyClass)
    assert {"question", "thank-you", "other"} == NEUTRAL_INTENTS


def test_detect_stage_accepts_reply_classes() -> None:
    assert detect_stage(EMPTY, ReplyClass.INTERESTED) is Stage.HOT_RESPONSE


def test_detect_stage_rejects_an_unknown_intent_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="interested") as info:
        detect_stage(EMPTY, "maybe")
    assert "'maybe'" in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"inbound_count": 0},
        {"outbound_count": -1},
        {"last_intent": "bogus"},
    ],
)
def test_snapshot_rejects_impossible_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        snapshot(**bad)


# -------------------------------------------------------------------- template drafts


def assert_sendable(result: Draft) -> None:
    for text in (result.text, *result.alternatives):
        assert text and len(text) < 320 and len(text) <= MAX_REPLY_CHARS, text
        assert not DEBRIS.search(text), text
        assert not URL.search(text.replace("sam@acme.com", "")), text
        assert set(text) <= GSM_BASIC_CHARSET, text
        assert text == text.strip() and "  " not in text, text
    assert len(result.alternatives) <= 3
    texts = [result.text, *result.alternatives]
    assert len({t.casefold() for t in texts}) == len(texts)


@pytest.mark.parametrize("client", client_ids())
@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("snap", [FULL, EMPTY], ids=["all-values", "no-values"])
def test_every_draft_renders_sendable(
    client: str, stage: Stage, snap: ConversationSnapshot
) -> None:
    for intent in DRAFTABLE_INTENTS:
        result = draft(client=client, stage=stage, intent=intent, snapshot=snap)
        assert_sendable(result)
        assert result.source == "template" and result.stage is stage
        assert result.template_id.split(".")[0] in {client, "default"}
        assert f".{stage}." in result.template_id


def test_all_clients_and_the_default_persona_are_known() -> None:
    assert set(client_ids()) == set(Client)
    assert "sabrina_default" in persona_ids()


@pytest.mark.parametrize(
    ("client", "deliverable"),
    [
        ("homeowner-advisor", "property valuation report"),
        ("ecbb", "exit preparation guide"),
        ("outreachglobal", "white-label pitch"),
        ("nextier", "user-to-owner pitch"),
    ],
)
def test_hot_drafts_name_the_clients_deliverable(client: str, deliverable: str) -> None:
    result = draft(client=client, stage=Stage.HOT_RESPONSE, intent="interested")
    assert deliverable in result.text
    assert "Sam" in result.text


def test_a_draft_is_deterministic() -> None:
    assert draft() == draft()
    later = snapshot(inbound_count=2, outbound_count=2, first_name="Sam")
    # Moving along the conversation may pick another variant, but again the same each time.
    assert draft(snapshot=later) == draft(snapshot=later)


@pytest.mark.parametrize("client", client_ids())
@pytest.mark.parametrize("stage", list(Stage))
def test_never_the_last_outbound_text(client: str, stage: Stage) -> None:
    for intent in DRAFTABLE_INTENTS:
        for snap in (FULL, EMPTY):
            first = draft(client=client, stage=stage, intent=intent, snapshot=snap)
            for last in (first.text, f"  {first.text.upper()} "):
                again = draft(
                    client=client,
                    stage=stage,
                    intent=intent,
                    snapshot=snap,
                    last_outbound_text=last,
                )
                texts = [again.text.casefold(), *(a.casefold() for a in again.alternatives)]
                assert first.text.casefold() not in texts
                assert_sendable(again)


def test_repeated_drafts_of_one_slot_never_repeat_back_to_back() -> None:
    last = None
    for _ in range(6):
        result = draft(stage=Stage.WARMING_UP, intent="thank-you", last_outbound_text=last)
        assert result.text != last
        last = result.text


def test_missing_values_fall_back_to_neutral_wording() -> None:
    cold = draft(client="homeowner-advisor", stage=Stage.COLD_OPEN, intent="other", snapshot=EMPTY)
    every = [cold.text, *cold.alternatives]
    assert any("your home" in t for t in every)
    got_email = draft(stage=Stage.HOT_RESPONSE, intent="email-capture", snapshot=EMPTY)
    assert "your inbox" in " ".join([got_email.text, *got_email.alternatives])
    for text in every:
        assert "there," not in text.split("Hi there")[-1]  # no "Thanks, there!"
        assert not DEBRIS.search(text)


def test_fields_override_the_snapshot() -> None:
    result = draft(
        stage=Stage.HOT_RESPONSE,
        intent="email-capture",
        fields={"email": "new@example.org", "first_name": "Alex"},
    )
    every = " ".join([result.text, *result.alternatives])
    assert "new@example.org" in every and "sam@acme.com" not in every
    assert "Alex" in every and "Sam" not in every


@pytest.mark.parametrize("first_name", ["None", "null", "  ", "", "X" * 21, None], ids=repr)
def test_unusable_values_count_as_missing(first_name: str | None) -> None:
    result = draft(snapshot=snapshot(first_name=first_name), stage=Stage.WARMING_UP)
    assert_sendable(result)
    assert "None" not in result.text and "XXXX" not in result.text


def test_unusable_email_falls_back() -> None:
    result = draft(
        stage=Stage.HOT_RESPONSE, intent="email-capture", fields={"email": "not an email"}
    )
    assert "not an email" not in " ".join([result.text, *result.alternatives])


def test_shouting_names_are_cased_and_mixed_case_is_kept() -> None:
    assert "Sam" in draft(snapshot=snapshot(first_name="SAM"), stage=Stage.HOT_RESPONSE).text
    assert "McKay" in draft(snapshot=snapshot(first_name="McKay"), stage=Stage.HOT_RESPONSE).text


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"client": "acme"}, ["acme", "homeowner-advisor", "ecbb"]),
        ({"persona": "bob"}, ["bob", "sabrina_default"]),
        ({"intent": "maybe"}, ["maybe", "interested"]),
        ({"stage": "lukewarm"}, ["lukewarm", "cold_open"]),
        ({"fields": {"firstname": "Sam"}}, ["firstname", "first_name", "inbound_text"]),
    ],
)
def test_unknown_inputs_name_the_valid_ones(kwargs: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        draft(**kwargs)
    for name in names:
        assert name in str(info.value)


def test_an_opt_out_is_never_drafted() -> None:
    with pytest.raises(ValueError, match="opt_out_confirmation"):
        draft(intent="opt-out", stage=Stage.HANDLING_PUSHBACK)


def test_intent_specific_slots_beat_a_clients_catch_all() -> None:
    # homeowner-advisor has its own follow_up "*", but a thank-you there is default's thank-you.
    result = draft(stage=Stage.FOLLOW_UP, intent="thank-you")
    assert result.template_id.startswith("default.follow_up.thank-you.")
    assert draft(stage=Stage.FOLLOW_UP, intent="other").template_id.startswith(
        "homeowner-advisor.follow_up.*."
    )


# ---------------------------------------------------------------------- service texts


def test_opt_out_confirmation_is_plain() -> None:
    assert service_text("opt_out_confirmation", team_name="Acme Homes") == (
        "You're unsubscribed from Acme Homes messages and won't get any more. "
        "Reply START to resubscribe."
    )


@pytest.mark.parametrize("kind", list(ServiceKind))
def test_service_texts_name_the_team_without_links_or_offers(kind: ServiceKind) -> None:
    text = service_text(kind, team_name="  Acme   Homes ")
    assert "Acme Homes" in text
    assert not URL.search(text) and not OFFER_WORDS.search(text)
    assert len(text) < 320 and set(text) <= GSM_BASIC_CHARSET
    if kind is not ServiceKind.OPT_OUT_CONFIRMATION:
        assert "STOP" in text


def test_help_default_and_team_help_text() -> None:
    default = service_text("help", team_name="Acme")
    assert "Acme" in default and "Reply STOP to opt out" in default
    assert service_text("help", team_name="Acme", help_text="  ") == default
    own = "Acme Homes: call 555-0100 for help. Reply STOP to unsubscribe."
    assert service_text("help", team_name="Acme", help_text=own) == own
    bare = service_text("help", team_name="Acme", help_text="Acme Homes: call 555-0100.")
    assert bare == "Acme Homes: call 555-0100.\nReply STOP to opt out"


def test_service_text_rejects_unknown_kinds_and_blank_teams() -> None:
    with pytest.raises(ValueError, match="opt_out_confirmation, opt_in_confirmation, help"):
        service_text("goodbye", team_name="Acme")
    with pytest.raises(ValueError, match="team_name"):
        service_text("help", team_name="   ")


# ------------------------------------------------------------------------- the LLM


@pytest.fixture
def sandbox() -> Iterator[SandboxLlm]:
    with SandboxLlm(api_key="test-key", timeout_fault_seconds=3) as server:
        yield server


@pytest.fixture
def drafter(sandbox: SandboxLlm) -> Iterator[LlmDrafter]:
    with LlmDrafter(sandbox.base_url, "test-key", SANDBOX_MODEL, timeout_s=0.5) as llm:
        yield llm


def llm_draft(drafter: LlmDrafter, **kwargs: Any) -> Draft:
    arguments: dict[str, Any] = {
        "stage": Stage.HOT_RESPONSE,
        "intent": "interested",
        "fields": {"inbound_text": "Yes please, send it over"},
        "llm": drafter,
    }
    return draft(**(arguments | kwargs))


def test_llm_draft_over_http(sandbox: SandboxLlm, drafter: LlmDrafter) -> None:
    result = llm_draft(drafter)
    assert result.source == "llm" and result.template_id == f"llm:{SANDBOX_MODEL}"
    assert result.stage is Stage.HOT_RESPONSE
    assert "Sam" in result.text  # the sandbox greets the first name given in the prompt
    assert_sendable(result)
    assert 1 <= len(result.alternatives) <= 3

    (request,) = sandbox.received
    assert request["model"] == SANDBOX_MODEL
    assert request["n"] == 4 and 0 < request["temperature"] <= 1
    system, user = request["messages"]
    assert system["role"] == "system" and "Sabrina" in system["content"]
    assert "Homeowner Advisor" in system["content"]
    assert "property valuation report" in system["content"]
    assert user["role"] == "user"
    assert "Yes please, send it over" in user["content"] and "interested" in user["content"]
    assert "First name: Sam" in user["content"] and "hot_response" in user["content"]
    # Same request, same answer: the sandbox is deterministic.
    assert llm_draft(drafter) == result


def test_llm_answers_are_deterministic_across_sandboxes() -> None:
    messages = [{"role": "user", "content": "First name: Dana\nhello"}]
    texts = complete("m", messages, 4)
    assert texts == complete("m", messages, 4) and len(set(texts)) == 4
    assert all("Dana" in t and len(t) < 320 for t in texts)
    assert all("Dana" not in t for t in complete("m", [{"role": "user", "content": "hi"}], 3))


def test_llm_never_repeats_the_last_outbound_text(drafter: LlmDrafter) -> None:
    first = llm_draft(drafter)
    again = llm_draft(drafter, last_outbound_text=first.text)
    assert again.text != first.text and first.text not in again.alternatives


@pytest.mark.parametrize("fault", ["500", "503", "timeout", "malformed", "no_choices"])
def test_llm_failure_falls_back_to_templates(
    sandbox: SandboxLlm, drafter: LlmDrafter, fault: str
) -> None:
    sandbox.inject(fault)
    started = time.monotonic()
    result = llm_draft(drafter)
    assert time.monotonic() - started < 2.5  # a hanging model costs the timeout, no more
    assert result == draft(stage=Stage.HOT_RESPONSE, intent="interested")
    assert result.source == "template"
    assert sandbox.faults_pending == 0


@pytest.mark.parametrize("fault", ["500", "timeout", "malformed", "no_choices"])
def test_llm_drafter_raises_llm_unavailable(
    sandbox: SandboxLlm, drafter: LlmDrafter, fault: str
) -> None:
    sandbox.inject(fault)
    with pytest.raises(LlmUnavailable) as info:
        drafter.draft(system="s", prompt="p")
    assert info.value.reason


def test_wrong_key_is_401_and_falls_back(sandbox: SandboxLlm) -> None:
    with LlmDrafter(sandbox.base_url, "wrong", SANDBOX_MODEL, timeout_s=1) as llm:
        with pytest.raises(LlmUnavailable, match="401"):
            llm.draft(system="s", prompt="p")
        assert llm_draft(llm).source == "template"
    assert sandbox.unauthorized == 2
    assert "wrong" not in repr(llm) and "test-key" not in repr(llm)


def test_unreachable_server_falls_back() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LlmDrafter(f"http://127.0.0.1:{port}", None, "m", timeout_s=1) as llm:
        with pytest.raises(LlmUnavailable, match="request failed"):
            llm.draft(system="s", prompt="p")
        assert llm_draft(llm).source == "template"


def test_base_url_may_end_in_v1(sandbox: SandboxLlm) -> None:
    with LlmDrafter(sandbox.base_url + "/v1/", "test-key", SANDBOX_MODEL) as llm:
        assert len(llm.draft(system="s", prompt="First name: Ann", n=2)) == 2


def test_a_given_http_client_is_used_and_left_open(sandbox: SandboxLlm) -> None:
    with httpx.Client(timeout=1) as client:
        llm = LlmDrafter(sandbox.base_url, "test-key", SANDBOX_MODEL, client=client)
        llm.close()
        assert llm.draft(system="s", prompt="p", n=1)


class StubLlm:
    """A drafter answering fixed texts, for what the HTTP sandbox does not produce."""

    model = "stub"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def draft(self, *, system: str, prompt: str, n: int = 3) -> list[str]:
        return self.texts


def test_unusable_llm_texts_are_dropped() -> None:
    good = "Lovely, Sam! I'll get that report over to you today."
    stub = StubLlm(
        [
            "Hi [Name], check https://example.com for the report!",
            "See acme.io for details",
            "Hi {first_name}, thanks!",
            good,
        ]
    )
    result = draft(stage=Stage.HOT_RESPONSE, intent="interested", llm=stub)  # type: ignore[arg-type]
    assert result.text == good and result.source == "llm"
    assert_sendable(result)


def test_all_unusable_or_repeated_llm_texts_fall_back() -> None:
    last = "Lovely, Sam! I'll get that report over to you today."
    stub = StubLlm(["Visit www.example.com", last])
    result = draft(
        stage=Stage.HOT_RESPONSE,
        intent="interested",
        llm=stub,  # type: ignore[arg-type]
        last_outbound_text=last,
    )
    assert result.source == "template" and result.text != last


def test_sms_text_cleans_and_trims() -> None:
    assert sms_text("\u201cIt\u2019s here \u2014 really\u2026\u201d") == "It's here - really..."
    long = "Short first sentence here. " + "word " * 100
    trimmed = sms_text(long)
    assert len(trimmed) <= MAX_REPLY_CHARS and trimmed.endswith("word")
    sentences = "This is a sentence that goes on. " * 12
    cut = sms_text(sentences)
    assert len(cut) <= MAX_REPLY_CHARS and cut.endswith("on.")


def test_sandbox_models_endpoint_and_auth(sandbox: SandboxLlm) -> None:
    with httpx.Client(base_url=sandbox.base_url, timeout=2) as http:
        assert http.get("/v1/models").status_code == 401
        listing = http.get("/v1/models", headers={"Authorization": "Bearer test-key"})
        assert listing.json()["data"][0]["id"] == SANDBOX_MODEL
        bad = http.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": []},
            headers={"Authorization": "Bearer test-key"},
        )
        assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]


def test_sandbox_runs_as_a_module() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "outreach_core.sandbox.llm"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        with LlmDrafter(base_url, None, SANDBOX_MODEL, timeout_s=2) as llm:
            assert llm.draft(system="s", prompt="p", n=2)
    finally:
        process.terminate()
        process.wait(timeout=10)


# ------------------------------------------------------------------------ data files


def test_packaged_files_load_once() -> None:
    assert load_responder_templates() is load_responder_templates()
    assert set(load_responder_templates().variables) == set(LEAD_VARIABLES)


def with_template(text: str, owner: str = "ecbb", stage: str = "cold_open") -> dict[str, Any]:
    data = copy.deepcopy(packaged("responder_templates.yaml"))
    data["templates"][owner][stage]["*"][0] = text
    return data


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Hi {frist_name}, thanks!", "unknown variable {frist_name}"),
        ("Hi {first_name, thanks!", "stray '{'"),
        ("Hi } there", "stray '}'"),
        ("Thanks {first_name|}! " + "x" * 300, "over 319"),
        ("Thanks {first_name|}! It\u2019s ready.", "GSM-7"),
        ("Thanks! See https://acme.example for more.", "no links"),
        ("{first_name|}, thanks for the reply!", "starts with punctuation"),
    ],
)
def test_bad_templates_are_rejected_naming_the_entry(text: str, problem: str) -> None:
    with pytest.raises(ReplyRulesError) as info:
        parse_responder_templates(with_template(text))
    message = str(info.value)
    assert "templates.ecbb.cold_open.*[0]" in message and problem in message
    assert message.startswith("responder_templates.yaml: ")


def test_a_slot_needs_two_distinct_variants() -> None:
    data = copy.deepcopy(packaged("responder_templates.yaml"))
    data["templates"]["ecbb"]["cold_open"]["*"] = ["Thanks!", "thanks! "]
    with pytest.raises(
        ReplyRulesError, match=r"templates\.ecbb\.cold_open\.\*: needs at least two"
    ):
        parse_responder_templates(data)


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["templates"]["default"]["follow_up"].pop("*"), "default.follow_up: needs"),
        (lambda d: d["templates"].setdefault("acme", {}), "templates.acme: not a client"),
        (
            lambda d: d["templates"]["default"]["cold_open"].update({"opt-out": ["a", "b"]}),
            "cold_open.opt-out: not an intent",
        ),
        (
            lambda d: d["templates"]["default"].update({"lukewarm": {}}),
            "templates.default.lukewarm",
        ),
        (lambda d: d["variables"].pop("email"), "variables: must define exactly"),
        (lambda d: d["service_texts"].pop("help"), "service_texts: missing help"),
        (
            lambda d: d["service_texts"].update(help="Acme help: visit acme.com"),
            "service_texts.help: must name the team",
        ),
        (
            lambda d: d["service_texts"].update(help="{team_name}: see www.acme.com. Reply STOP."),
            "service_texts.help: no links",
        ),
        (
            lambda d: d["service_texts"].update(opt_in_confirmation="Welcome to {team_name}!"),
            "service_texts.opt_in_confirmation: must say how to opt out",
        ),
        (lambda d: d["clients"]["ecbb"].update(deliverable="x" * 41), "clients.ecbb.deliverable"),
        (lambda d: d["clients"]["ecbb"].update(extra=1), "clients.ecbb.extra"),
        (lambda d: d["clients"].pop("nextier"), "clients: missing nextier"),
        (lambda d: d["clients"].update(acme=d["clients"]["ecbb"]), "clients.acme"),
        (lambda d: d["stages"]["cold_open"].update(goal="Offer {prize}"), "stages.cold_open.goal"),
    ],
)
def test_bad_template_files_are_rejected(mutate: Any, problem: str) -> None:
    data = copy.deepcopy(packaged("responder_templates.yaml"))
    mutate(data)
    with pytest.raises(ReplyRulesError, match=re.escape(problem)):
        parse_responder_templates(data)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"display_name": "X" * 21}, "personas.sabrina_default.display_name"),
        ({"sign_off": "\u2014 Sabrina"}, "personas.sabrina_default.sign_off"),
        ({"tone": ""}, "personas.sabrina_default.tone"),
        ({"colour": "blue"}, "personas.sabrina_default.colour"),
    ],
)
def test_bad_personas_are_rejected(change: dict[str, Any], problem: str) -> None:
    data = copy.deepcopy(packaged("personas.yaml"))
    data["personas"]["sabrina_default"].update(change)
    with pytest.raises(ReplyRulesError, match=re.escape(problem)):
        parse_personas(data)


def test_packaged_personas_parse() -> None:
    personas = parse_personas(packaged("personas.yaml"))
    assert personas["sabrina_default"].display_name == "Sabrina"

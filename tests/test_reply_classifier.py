"""Inbound reply classification: carrier keywords, the rules, and accuracy on labelled replies.

Pure: no database, no network. The labelled set (tests/data/replies_labelled.yaml) was written
as people text, before the rules; see its header for the labelling guide."""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from outreach_core.replies.classes import (
    Alternation,
    Client,
    ReplyClass,
    ReplyRulesError,
    first_chars,
    read_yaml_resource,
)
from outreach_core.replies.classify import (
    Classification,
    ReplyClassifier,
    classify,
    default_classifier,
    load_classification_rules,
    parse_classification_rules,
)
from outreach_core.replies.keywords import (
    KeywordIntent,
    detect_keyword,
    keyword_intent,
    load_keyword_rules,
    parse_keyword_rules,
)

LABELLED = Path(__file__).parent / "data" / "replies_labelled.yaml"
THRESHOLD = 70  # downstream auto-replies need at least this confidence

OPT_OUT_KEYWORDS = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "REMOVE",
]


def labelled() -> list[dict[str, Any]]:
    return list(yaml.safe_load(LABELLED.read_text(encoding="utf-8"))["replies"])


def run(item: dict[str, Any]) -> Classification:
    return classify(
        item["text"],
        item["client"],
        opt_out_type=item.get("opt_out_type"),
        is_call=bool(item.get("is_call", False)),
    )


def confusion_matrix(pairs: list[tuple[str, str]]) -> str:
    """Rows expected, columns predicted."""
    counts = Counter(pairs)
    names = [c.value for c in ReplyClass]
    lines = [" " * 18 + " ".join(f"{n[:9]:>9}" for n in names)]
    for expected in names:
        row = " ".join(f"{counts[(expected, got)] or '.':>9}" for got in names)
        lines.append(f"{expected:>18}{row}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- carrier keywords


@pytest.mark.parametrize("keyword", OPT_OUT_KEYWORDS)
@pytest.mark.parametrize(
    "decorate",
    [
        lambda k: k,
        str.lower,
        str.capitalize,
        lambda k: f"{k.capitalize()}.",
        lambda k: f" {k}!! ",
        lambda k: f"{k.lower()} 🛑",
        lambda k: f"\n{k}\n",
        lambda k: f'"{k}"',
    ],
)
def test_opt_out_keywords_match_the_whole_message_whatever_the_decoration(
    keyword: str, decorate: Any
) -> None:
    text = decorate(keyword)
    assert keyword_intent(text) == KeywordIntent.OPT_OUT, text
    assert classify(text, Client.NEXTIER).id == ReplyClass.OPT_OUT


@pytest.mark.parametrize("text", ["opt out", "Opt-Out", "stop all", "S.T.O.P", "stoppp", "Stpo"])
def test_opt_out_keyword_spellings(text: str) -> None:
    assert keyword_intent(text) == KeywordIntent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        # the brief's examples
        "stop texting me",
        "remove me from your list",
        "do not contact me",
        "don't text me again",
        "wrong number, stop",
        "take me off your list",
        "unsubscribe me please",
        "leave me alone",
        "lose my number",
        "I revoke consent",
        # consent revoked in other reasonable wordings
        "Please stop contacting me",
        "could you please stop",
        "i want you to stop",
        "Get me off your list",
        "don't ever text me again",
        "Do not contact this number",
        "Quit bothering me!!",
        "I do not want to receive these texts",
        "Stop sending me messages",
        "stop, wrong number",
        "wrong #",
        "I never signed up for this",
        "opt me out",
        "This is not the right person",
        "forget my number",
        "delete my info",
        "STOP. NOT INTERESTED",
        "not interested stop",
        "NOT INTERESTED STOP CONTACTING ME",
        "Stop please and thank you",
        "who is this? remove me",
        "I do not consent",
        "i revoke consent to be contacted",
        "I withdraw my consent",
        "how do i unsubscribe",
        "Please don't reach out again",
        "stop reaching out",
        "I'd like to be removed",
        "remove from list",
        "This number doesn't belong to John anymore",
        "I never want to hear from you again",
        "cease all communication",
        "i'm blocking this number",
        "i will report you to the FCC",
        "how do I make it stop",
        "this is a business line please remove",
        "no more please",
        "how many times do I have to say stop",
        "fuck off",
        "put me on your do not call list",
        "Reply STOP",
    ],
)
def test_natural_opt_outs(text: str) -> None:
    assert keyword_intent(text) == KeywordIntent.OPT_OUT, detect_keyword(text)


@pytest.mark.parametrize(
    "text",
    [
        # the brief's examples: the word is there, the wish is not
        "don't stop the music",
        "can't stop thinking about selling",
        "what's the end date?",
        "is this the end of the offer",
        "remove the old deck first?",
        # more of the same
        "stop by anytime",
        "I'll stop by Friday",
        "We could end up selling next year",
        "Can you cancel the meeting and reschedule?",
        "can you remove the setup fee",
        "I quit my job to run this business full time",
        "Don't call me before 5",
        "don't call, text me instead",
        "the end",
        "Is this spam?",
        "can I opt out later if it doesn't work",
        "Please don't take me off the list, I'm interested",
        "please don't remove me from your list",
        "I don't agree with the price",
        "Does the platform stop sending when someone replies?",
        "does it stop texting leads that reply?",
        "what does your software do to stop spam",
        "How does the platform handle unsubscribes?",
        "Can I block off an hour tomorrow for a call?",
        "we stopped using our old crm",
        "the bus stop near the house",
        "enough about me, what's the offer",
        "I get off work at 5",
        # prospects of SMS platforms ask about stopping and compliance
        "what happens if someone replies STOP?",
        "are you TCPA compliant?",
        "how does it handle opt outs",
        # contact words that invite contact
        "drop me a line",
        "my phone is not working, call tomorrow",
        "I'll block this afternoon for a call",
    ],
)
def test_containing_an_opt_out_word_is_not_an_opt_out(text: str) -> None:
    assert keyword_intent(text) is None, detect_keyword(text)
    assert classify(text, Client.NEXTIER).id != ReplyClass.OPT_OUT


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("START", KeywordIntent.OPT_IN),
        ("Start.", KeywordIntent.OPT_IN),
        ("unstop", KeywordIntent.OPT_IN),
        ("YES", KeywordIntent.OPT_IN),
        ("yes!", KeywordIntent.OPT_IN),
        ("HELP", KeywordIntent.HELP),
        ("help?", KeywordIntent.HELP),
        ("Info", KeywordIntent.HELP),
        ("yes please call me", None),
        ("can you help me sell", None),
        ("send me more info", None),
        ("let's start", None),
        ("", None),
    ],
)
def test_opt_in_and_help_are_whole_message_keywords(
    text: str, intent: KeywordIntent | None
) -> None:
    assert keyword_intent(text) == intent


def test_opt_in_is_documented_as_only_for_phones_already_opted_out() -> None:
    assert "currently opted out" in (keyword_intent.__doc__ or "")


@pytest.mark.parametrize(
    ("opt_out_type", "text", "intent"),
    [
        ("STOP", "Arrêtez", KeywordIntent.OPT_OUT),
        ("stop", "hello", KeywordIntent.OPT_OUT),
        ("START", "stop", KeywordIntent.OPT_IN),
        ("HELP", "who is this", KeywordIntent.HELP),
        ("", "STOP", KeywordIntent.OPT_OUT),
        ("SOMETHING-NEW", "hello", None),
    ],
)
def test_twilio_opt_out_type_decides_when_present(
    opt_out_type: str, text: str, intent: KeywordIntent | None
) -> None:
    assert keyword_intent(text, opt_out_type) == intent


# ----------------------------------------------------------------------------- classification


def test_opt_out_overrides_everything() -> None:
    assert classify("stop, my email is bob@gmail.com", "nextier").id == ReplyClass.OPT_OUT
    assert classify("stop calling me", "ecbb", is_call=True).id == ReplyClass.OPT_OUT
    assert classify("jane@x.io", "ecbb", opt_out_type="STOP").id == ReplyClass.OPT_OUT
    result = classify("Yes I'm interested but stop texting me", "ecbb")
    assert result.id == ReplyClass.OPT_OUT
    assert result.confidence >= THRESHOLD


def test_an_inbound_call_is_called_phone_line() -> None:
    for text in ["", "yes", "hi my email is pete@pete.com", "interested in a valuation"]:
        result = classify(text, "homeowner-advisor", is_call=True)
        assert (result.id, result.confidence) == (ReplyClass.CALLED_PHONE_LINE, 100)


@pytest.mark.parametrize(
    ("text", "email"),
    [
        ("jane.doe@gmail.com", "jane.doe@gmail.com"),
        ("JANE.DOE@GMAIL.COM", "jane.doe@gmail.com"),
        ("jane.doe @ gmail.com", "jane.doe@gmail.com"),
        ("email: steve.o @gmail.com", "steve.o@gmail.com"),
        ("Email me at bill.j@gmail .com", "bill.j@gmail.com"),
        ("Send it to tom_smith@outlook.com.", "tom_smith@outlook.com"),
        ("my email is bob@x.io. thanks", "bob@x.io"),
        ("sure! send it to bob@x.io thanks", "bob@x.io"),
        ("Email (chris.w@gmail.com)", "chris.w@gmail.com"),
        ("<jay@jay.co>", "jay@jay.co"),
        ("lisa+realestate@gmail.com", "lisa+realestate@gmail.com"),
        ("sure: ops@acme.co.uk", "ops@acme.co.uk"),
        ("jane dot doe at gmail dot com", "jane.doe@gmail.com"),
        ("email me at jane dot doe at gmail dot com", "jane.doe@gmail.com"),
        ("my email is j.smith at yahoo.com", "j.smith@yahoo.com"),
        ("Not right now but you can email me at ann@annsflowers.com", "ann@annsflowers.com"),
    ],
)
def test_email_capture_extracts_the_address(text: str, email: str) -> None:
    result = classify(text, "nextier")
    assert result.id == ReplyClass.EMAIL_CAPTURE
    assert result.fields == {"email": email}
    assert result.confidence >= THRESHOLD


@pytest.mark.parametrize(
    "text",
    ["bob@gmail", "meet @ 5pm", "look at zillow.com", "not.an.email@", "a@b.c", "I'm at work.."],
)
def test_no_valid_address_no_email_capture(text: str) -> None:
    assert classify(text, "nextier").id != ReplyClass.EMAIL_CAPTURE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not interested", ReplyClass.NOT_INTERESTED),
        ("not really interested", ReplyClass.NOT_INTERESTED),
        ("no interest", ReplyClass.NOT_INTERESTED),
        ("I'm not at all interested", ReplyClass.NOT_INTERESTED),
        ("don't think I'm interested", ReplyClass.NOT_INTERESTED),
        ("no thanks", ReplyClass.NOT_INTERESTED),
        ("No, thank you.", ReplyClass.NOT_INTERESTED),
        ("thanks but no thanks", ReplyClass.NOT_INTERESTED),
        ("not sure, what is it?", ReplyClass.QUESTION),
        ("yes... actually not interested", ReplyClass.NOT_INTERESTED),  # the later clause wins
        ("I thought about selling but not for years", ReplyClass.NOT_INTERESTED),
        ("not sure but I'm interested", ReplyClass.INTERESTED),
        ("interested", ReplyClass.INTERESTED),
        ("No, I'm interested", ReplyClass.INTERESTED),  # the comma ends the negation
        ("I don't want to sell", ReplyClass.NOT_INTERESTED),
        ("I'm ready to sell", ReplyClass.INTERESTED),
        ("I can't stop thinking about selling", ReplyClass.INTERESTED),  # not a negation
        ("No problem, thanks", ReplyClass.THANK_YOU),  # nor is this
        ("I know, thanks!", ReplyClass.THANK_YOU),  # "know" is not "no"
        ("i know", ReplyClass.OTHER),
        ("Happy Thanksgiving!", ReplyClass.OTHER),  # "thanksgiving" is not "thanks"
    ],
)
def test_negation_and_word_boundaries(text: str, expected: ReplyClass) -> None:
    assert classify(text, "homeowner-advisor").id == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("im intrested", ReplyClass.INTERESTED),
        ("very interseted", ReplyClass.INTERESTED),
        ("Not intrested", ReplyClass.NOT_INTERESTED),
        ("definately", ReplyClass.INTERESTED),
        ("pls call me", ReplyClass.INTERESTED),
        ("u can call me at this number", ReplyClass.INTERESTED),
        ("whats ur company name", ReplyClass.QUESTION),
        ("thx", ReplyClass.THANK_YOU),
        ("ty", ReplyClass.THANK_YOU),
        ("yesss", ReplyClass.INTERESTED),
        ("YES CALL ME", ReplyClass.INTERESTED),
    ],
)
def test_typos_slang_and_shouting(text: str, expected: ReplyClass) -> None:
    assert classify(text, "ecbb").id == expected


def test_a_corrected_typo_scores_lower_than_the_word() -> None:
    assert (
        classify("im intrested", "ecbb").confidence < classify("im interested", "ecbb").confidence
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("👍", ReplyClass.THANK_YOU),
        ("🙏🏽", ReplyClass.THANK_YOU),
        ("❤️", ReplyClass.THANK_YOU),
        ("😡", ReplyClass.NOT_INTERESTED),
        ("👎", ReplyClass.NOT_INTERESTED),
        ("👍 yes", ReplyClass.INTERESTED),  # a courtesy beside an intent is not the intent
        ("Sounds good 👍", ReplyClass.INTERESTED),
        ("thanks, who is this?", ReplyClass.QUESTION),
        ("Thanks! Yes I'm interested, what's the price?", ReplyClass.INTERESTED),
    ],
)
def test_emoji_and_several_intents(text: str, expected: ReplyClass) -> None:
    assert classify(text, "outreachglobal").id == expected


@pytest.mark.parametrize(
    ("text", "client", "expected", "elsewhere"),
    [
        ("What's my house worth?", Client.HOMEOWNER_ADVISOR, "interested", "question"),
        ("I have a realtor", Client.HOMEOWNER_ADVISOR, "not-interested", "other"),
        ("Looking to exit", Client.ECBB, "interested", "other"),
        ("selling my business", Client.ECBB, "interested", "other"),
        ("can we schedule a demo", Client.NEXTIER, "interested", "question"),
        ("Do you offer white label?", Client.OUTREACHGLOBAL, "interested", "question"),
        ("we're an agency", Client.OUTREACHGLOBAL, "interested", "other"),
    ],
)
def test_per_client_rules(text: str, client: Client, expected: str, elsewhere: str) -> None:
    assert classify(text, client).id == expected
    for other in Client:
        if other != client:
            assert classify(text, other).id == elsewhere, other


def test_client_may_be_a_string_and_an_unknown_one_is_refused() -> None:
    assert classify("yes", "ecbb") == classify("yes", Client.ECBB)
    assert classify("yes", " NexTier ").id == ReplyClass.INTERESTED
    with pytest.raises(
        ValueError, match="unknown client 'acme'.*homeowner-advisor.*outreachglobal"
    ):
        classify("yes", "acme")


def test_the_result_names_the_class_and_explains_itself() -> None:
    result = classify("Not interested, thanks", "nextier")
    assert result.id == ReplyClass.NOT_INTERESTED
    assert (result.name, result.priority) == ("Not interested", 40)
    assert "not-interested" in result.matched
    assert "interested->not-interested" in classify("not interested", "nextier").matched
    assert result.fields == {}
    assert classify("hmm", "nextier").matched == ()
    assert classify("STOP", "nextier").matched == ("keyword:stop",)


def test_priorities_come_from_the_rules_file() -> None:
    priorities = {c: info.priority for c, info in load_classification_rules().classes.items()}
    assert priorities == {
        ReplyClass.EMAIL_CAPTURE: 100,
        ReplyClass.CALLED_PHONE_LINE: 95,
        ReplyClass.OPT_OUT: 90,
        ReplyClass.INTERESTED: 50,
        ReplyClass.NOT_INTERESTED: 40,
        ReplyClass.THANK_YOU: 30,
        ReplyClass.QUESTION: 20,
        ReplyClass.OTHER: 0,
    }


@pytest.mark.parametrize(
    "text",
    [
        "Yes",
        "not interested",
        "Who is this?",
        "Thanks!",
        "What's my house worth?",
        "send me more info",
        "no thanks",
        "STOP",
    ],
)
def test_clear_replies_reach_the_auto_reply_threshold(text: str) -> None:
    assert classify(text, "homeowner-advisor").confidence >= THRESHOLD


@pytest.mark.parametrize(
    "text",
    [
        "ok",
        "maybe",
        "hmm",
        "I might be interested",
        "We have thought about selling but not for another few years",
        "I'll think about it",
        "thanks anyway",
        "interested but my husband isn't",
    ],
)
def test_ambiguous_replies_stay_below_the_auto_reply_threshold(text: str) -> None:
    assert classify(text, "homeowner-advisor").confidence < THRESHOLD


def test_classification_is_deterministic_and_rules_load_once() -> None:
    assert load_classification_rules() is load_classification_rules()
    assert load_keyword_rules() is load_keyword_rules()
    assert default_classifier() is default_classifier()
    text = "Yes! 👍 call me, or email jim at jim dot com"
    assert classify(text, "ecbb") == classify(text, "ecbb")


def test_opt_out_rules_in_the_classification_file_override_too() -> None:
    data = copy.deepcopy(read_yaml_resource("classification_rules.yaml"))
    data["rules"]["ecbb"]["opt-out"] = [
        {"id": "ec-not-my-business", "strength": "strong", "patterns": [r"\bnot my business\b"]}
    ]
    classifier = ReplyClassifier(parse_classification_rules(data), load_keyword_rules())
    assert classifier.classify("not my business, email me@x.io", "ecbb").id == ReplyClass.OPT_OUT
    assert classifier.classify("not my business", "nextier").id != ReplyClass.OPT_OUT


# ----------------------------------------------------------------------------- the data files


def _rules_data() -> dict[str, Any]:
    return copy.deepcopy(read_yaml_resource("classification_rules.yaml"))


def _keyword_data() -> dict[str, Any]:
    return copy.deepcopy(read_yaml_resource("keywords.yaml"))


def _first_interested_rule(data: dict[str, Any]) -> dict[str, Any]:
    return data["rules"]["base"]["interested"][0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: _first_interested_rule(d)["patterns"].append("(unclosed"),
            r"rules\.base\.interested\.0 \(affirmative\): not a valid regular expression",
        ),
        (
            lambda d: _first_interested_rule(d)["patterns"].append("{nope}"),
            r"rules\.base\.interested\.0 \(affirmative\): unknown term\(s\) \['nope'\]",
        ),
        (
            lambda d: _first_interested_rule(d)["patterns"].append("(?P<mine>x)"),
            r"named groups are reserved",
        ),
        (
            lambda d: _first_interested_rule(d).update(strength="huge"),
            r"rules\.base\.interested\.0\.strength: Input should be 'strong', 'medium' or 'weak'",
        ),
        (
            lambda d: _first_interested_rule(d).update(when_negated="nowhere"),
            r"rules\.base\.interested\.0\.when_negated: 'nowhere': expected one of",
        ),
        (
            lambda d: d["rules"]["ecbb"]["interested"].append(
                {"id": "affirmative", "strength": "weak", "patterns": ["x"]}
            ),
            r"rules\.ecbb\.interested\.\d+ \(affirmative\): id already used at "
            r"rules\.base\.interested\.0",
        ),
        (
            lambda d: d["rules"]["base"].update({"lukewarm": []}),
            r"rules\.base\.lukewarm\.\[key\]: Input should be 'email-capture'",
        ),
        (
            lambda d: d["rules"].update({"acme": {}}),
            r"rules: unknown rule set\(s\) \['acme'\]",
        ),
        (
            lambda d: d["rules"]["base"].update({"email-capture": []}),
            r"\['email-capture'\] cannot have rules",
        ),
        (
            lambda d: d["classes"].pop("question"),
            r"classes: missing class\(es\) \['question'\]",
        ),
        (
            lambda d: d["classes"]["question"].update(priority=50),
            r"classes: question and interested share priority 50|interested and question",
        ),
        (
            lambda d: d["text"]["fuzzy_vocabulary"].append("yes"),
            r"fuzzy_vocabulary: \['yes'\] shorter than 6",
        ),
        (lambda d: d["scoring"]["strength"].pop("weak"), r"scoring\.strength: missing \['weak'\]"),
        (lambda d: d.update(surprise=1), r"surprise: Extra inputs are not permitted"),
    ],
)
def test_a_bad_rules_file_fails_at_load_naming_the_entry(mutate: Any, message: str) -> None:
    data = _rules_data()
    mutate(data)
    with pytest.raises(ReplyRulesError, match=r"^classification_rules\.yaml: .*" + message):
        parse_classification_rules(data)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["opt_out_phrases"].append({"id": "broken", "pattern": "stop ("}),
            r"opt_out_phrases\.\d+ \(broken\): not a valid regular expression",
        ),
        (
            lambda d: d["opt_out_phrases"].append({"id": "Bad Id", "pattern": "x"}),
            r"opt_out_phrases\.\d+\.id: 'Bad Id' is not a lower-case slug",
        ),
        (
            lambda d: d["opt_out_phrases"].append({"id": "stop-first", "pattern": "x"}),
            r"\(stop-first\): duplicate id",
        ),
        (
            lambda d: d["keywords"]["opt_in"].append("Stop!"),
            r"keywords: 'Stop!' is both opt_out and opt_in",
        ),
        (
            # YAML reads an unquoted yes as true: the loader names the entry instead of
            # silently never matching it.
            lambda d: d["keywords"]["help"].append(True),
            r"keywords\.help\.\d+: Input should be a valid string",
        ),
        (
            lambda d: d["twilio_opt_out_type"].update({"stop": "opt_out"}),
            r"twilio_opt_out_type: 'stop': Twilio sends OptOutType in capitals",
        ),
    ],
)
def test_a_bad_keywords_file_fails_at_load_naming_the_entry(mutate: Any, message: str) -> None:
    data = _keyword_data()
    mutate(data)
    with pytest.raises(ReplyRulesError, match=r"^keywords\.yaml: .*" + message):
        parse_keyword_rules(data)


def test_the_packaged_files_are_valid() -> None:
    parse_classification_rules(_rules_data())
    parse_keyword_rules(_keyword_data())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (r"\bthank(?:s|ful)?\b", {"t"}),
        (r"(?:^|(?<=\. ))(?:please )?stop", {"p", "s"}),
        (r"(?<!\w)👍(?!\w)", {"👍"}),
        (r"(?:a|b)?c", {"a", "b", "c"}),
        (r"\w+", None),
        (r"x*", None),  # can match nothing: a candidate everywhere
        (r"(?i)yes", None),
    ],
)
def test_first_chars(source: str, expected: set[str] | None) -> None:
    assert first_chars(source) == (frozenset(expected) if expected is not None else None)


def test_alternation_matches_like_one_regex() -> None:
    alternatives = [
        ("a", r"\bno\b"),
        ("b", r"\bnot (?:really )?interested\b"),
        ("c", r"\w+ing\b"),
        ("d", r"(?:^|(?<=, ))yes"),
        ("e", r"\?"),
        ("f", r"x*"),
    ]
    plain = re.compile("|".join(f"(?P<{name}>{source})" for name, source in alternatives))
    fast = Alternation(alternatives)
    for text in ["no", "not really interested", "selling now", "ok, yes", "what?", "", "xx y"]:
        for pos in range(len(text) + 1):
            expected, got = plain.match(text, pos), fast.match(text, pos)
            assert (got and (got.lastgroup, got.span())) == (
                expected and (expected.lastgroup, expected.span())
            ), (text, pos)


# ----------------------------------------------------------------------------- the labelled set


def test_the_labelled_set_covers_every_client_and_class() -> None:
    items = labelled()
    assert len(items) >= 320
    assert {i["client"] for i in items} == {c.value for c in Client}
    assert {i["expected"] for i in items} == {c.value for c in ReplyClass}
    for item in items:
        assert item["expected"] != "email-capture" or item.get("email"), item
        assert item["expected"] != "called-phone-line" or item.get("is_call"), item


def test_accuracy_on_the_labelled_set() -> None:
    items = labelled()
    results = [run(item) for item in items]
    pairs = [(i["expected"], r.id.value) for i, r in zip(items, results, strict=True)]
    wrong = [
        f"{i['text']!r} ({i['client']}): expected {i['expected']} {i.get('email', '')}, "
        f"got {r.id.value} {r.confidence} {r.fields} {r.matched}"
        for i, r in zip(items, results, strict=True)
        if r.id != i["expected"]
        or (i["expected"] == "email-capture" and r.fields.get("email") != i["email"])
    ]
    accuracy = 1 - len(wrong) / len(items)
    assert accuracy >= 0.95, f"accuracy {accuracy:.3f}\n{confusion_matrix(pairs)}\n" + "\n".join(
        wrong
    )


def test_every_opt_out_is_caught_and_nothing_else_is_one() -> None:
    # A missed opt-out is a compliance failure; a false one silences a lead for good.
    items = labelled()
    missed, false = [], []
    for item in items:
        got = run(item).id == ReplyClass.OPT_OUT
        if item["expected"] == "opt-out" and not got:
            missed.append(item["text"])
        if item["expected"] != "opt-out" and got:
            false.append(item["text"])
    assert missed == [], f"opt-outs missed: {missed}"
    assert false == [], f"false opt-outs: {false}"


def test_confidence_separates_clear_from_ambiguous_replies() -> None:
    ambiguous_high, clear_low = [], []
    for item in labelled():
        result = run(item)
        if result.id != item["expected"]:
            continue  # the accuracy test reports those
        if item.get("ambiguous") and result.confidence >= THRESHOLD:
            ambiguous_high.append((item["text"], result.confidence))
        if (
            not item.get("ambiguous")
            and result.id != ReplyClass.OTHER
            and result.confidence < THRESHOLD
        ):
            clear_low.append((item["text"], result.confidence))
    assert ambiguous_high == [], "labelled ambiguous, yet confident enough to auto-reply"
    assert clear_low == [], "clear, yet not confident enough to auto-reply"

"""Campaigns are rows with a status machine and an append-only audit log: they survive a
restart (a new connection pool sees them as they were), and one team never sees another's."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from outreach_core.db.engine import app_engine, tenant_session
from outreach_core.db.states import CAMPAIGN_TRANSITIONS, CampaignStatus, CampaignType
from outreach_core.messaging import defaults
from outreach_core.messaging.campaigns import (
    CampaignNotFound,
    InvalidTransition,
    NewCampaign,
    campaign_events,
    create_campaign,
    get_campaign,
    list_campaigns,
    transition,
)
from outreach_core.messaging.enrolment import LeadSelection

S = CampaignStatus


def _new(name: str = "Spring plumbers") -> NewCampaign:
    return NewCampaign(
        name=name,
        type=CampaignType.SMS,
        selection=LeadSelection(bucket_id="ny-construction-plumbers", min_score=60),
        template="Hi {{firstName|there}}, quick question about {{companyName}}",
    )


def test_a_new_campaign_is_a_draft_with_the_defaults_and_an_audit_entry(team) -> None:
    campaign = create_campaign(team.team_id, _new(), actor="ann@acme.test").campaign
    assert campaign.status is S.DRAFT
    assert campaign.daily_limit == defaults.CAMPAIGN_DAILY_LIMIT
    assert campaign.persona == defaults.CAMPAIGN_PERSONA
    [event] = campaign_events(team.team_id, campaign.id)
    assert (event.actor, event.action, event.to_status) == ("ann@acme.test", "created", "draft")


def test_the_whole_life_of_a_campaign_is_in_its_audit_log(team) -> None:
    campaign = create_campaign(team.team_id, _new(), actor="ann").campaign
    steps = [
        (S.SCHEDULED, "ann", None),
        (S.ACTIVE, defaults.SYSTEM_ACTOR, "schedule start reached"),
        (S.PAUSED, "bob", "client asked to hold"),
        (S.ACTIVE, "bob", None),
        (S.PAUSED, defaults.SYSTEM_ACTOR, "budget of $50.00 reached"),
        (S.CANCELLED, "ann", "season over"),
    ]
    for to, actor, reason in steps:
        transition(team.team_id, campaign.id, to, actor, reason)

    # A fresh pool, as after a restart: the rows are all there is.
    app_engine().dispose()
    assert get_campaign(team.team_id, campaign.id).status is S.CANCELLED
    log = [
        (e.from_status, e.to_status, e.actor, e.reason)
        for e in campaign_events(team.team_id, campaign.id)
    ]
    assert log[1:] == [
        (str(before), str(to), actor, reason)
        for (before, _, _), (to, actor, reason) in zip(
            [(S.DRAFT, None, None), *steps[:-1]], steps, strict=True
        )
    ]


@pytest.mark.parametrize("current", list(S))
def test_only_the_machines_transitions_are_allowed(team, current: CampaignStatus) -> None:
    campaign = create_campaign(team.team_id, _new(), actor="ann").campaign
    with tenant_session(team.team_id) as session:
        session.execute(
            text("UPDATE campaigns SET status = :s WHERE id = :i"),
            {"s": current.value, "i": campaign.id},
        )
    for wanted in S:
        if wanted in CAMPAIGN_TRANSITIONS[current]:
            continue
        with pytest.raises(InvalidTransition) as info:
            transition(team.team_id, campaign.id, wanted, "ann")
        assert str(current) in str(info.value) and str(wanted) in str(info.value)
    assert get_campaign(team.team_id, campaign.id).status is current
    # Cancelling is possible from every state that is not final.
    assert (S.CANCELLED in CAMPAIGN_TRANSITIONS[current]) == (
        current not in (S.COMPLETED, S.CANCELLED)
    )


def test_concurrent_pause_and_resume_are_decided_one_after_the_other(team) -> None:
    campaign = create_campaign(team.team_id, _new(), actor="ann").campaign
    transition(team.team_id, campaign.id, S.SCHEDULED, "ann")
    transition(team.team_id, campaign.id, S.ACTIVE, "ann")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def pause() -> None:
        barrier.wait()
        try:
            transition(team.team_id, campaign.id, S.PAUSED, "ann")
            outcomes.append("paused")
        except InvalidTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=pause) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Exactly one pause took effect; the others saw a paused campaign.
    assert sorted(outcomes) == ["paused"] + ["refused"] * 7
    changes = [e for e in campaign_events(team.team_id, campaign.id) if e.to_status == "paused"]
    assert len(changes) == 1


def test_the_audit_log_is_append_only_for_the_application(team) -> None:
    campaign = create_campaign(team.team_id, _new(), actor="ann").campaign
    for statement in (
        "UPDATE campaign_events SET actor = 'mallory'",
        "DELETE FROM campaign_events",
    ):
        with (
            pytest.raises(ProgrammingError, match="permission denied"),
            tenant_session(team.team_id) as session,
        ):
            session.execute(text(statement))
    assert [e.actor for e in campaign_events(team.team_id, campaign.id)] == ["ann"]


def test_a_team_never_sees_or_changes_another_teams_campaigns(team, other_team) -> None:
    ours = create_campaign(team.team_id, _new("ours"), actor="ann").campaign
    theirs = create_campaign(other_team.team_id, _new("theirs"), actor="zoe").campaign
    assert [c.name for c in list_campaigns(team.team_id)] == ["ours"]
    with pytest.raises(CampaignNotFound):
        get_campaign(team.team_id, theirs.id)
    with pytest.raises(CampaignNotFound):
        transition(team.team_id, theirs.id, S.CANCELLED, "ann")
    assert campaign_events(team.team_id, theirs.id) == []
    assert get_campaign(other_team.team_id, theirs.id).status is S.DRAFT
    with pytest.raises(CampaignNotFound):
        get_campaign(other_team.team_id, ours.id)
    with pytest.raises(CampaignNotFound):
        get_campaign(team.team_id, uuid.uuid4())

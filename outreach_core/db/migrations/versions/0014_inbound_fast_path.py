"""the inbound webhook's fast path: an inbound message is routed and stored in one statement
(`outreach_store_inbound`); during a burst the webhook also stores its class and
suppresses an opted-out phone (`outreach_queue_inbound`), answers at once and leaves the
rest to the replies run, which takes `queued` messages without waiting

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# The values of this revision, frozen.
_STATUSES = ("received", "queued", "processed", "processing_failed")
_STATUSES_BEFORE = ("received", "processed", "processing_failed")
_CLASSES = (
    "email-capture",
    "called-phone-line",
    "opt-out",
    "interested",
    "not-interested",
    "thank-you",
    "question",
    "other",
)

# The replies sensor's work as 0012 left it, with the inbound part first.
_INBOUND_WORK_0009 = """
    SELECT DISTINCT team_id, 'inbound' FROM inbound_messages
     WHERE status = 'processing_failed'
        OR (status = 'received' AND received_at < now() - p_inbound_stale)"""
_INBOUND_WORK = """
    SELECT DISTINCT team_id, 'inbound' FROM inbound_messages
     WHERE status IN ('queued', 'processing_failed')
        OR (status = 'received' AND received_at < now() - p_inbound_stale)"""
_OTHER_WORK = """
    UNION
    SELECT DISTINCT team_id, 'reply' FROM messages
     WHERE kind IN ('reply', 'service')
       AND (status = 'claimed' OR (status = 'pending' AND not_before <= now()))
    UNION
    SELECT DISTINCT team_id, 'deliverable' FROM deliverable_jobs
     WHERE status = 'pending'
        OR (status = 'sending' AND claimed_at < now() - p_sending_stale)
    UNION
    SELECT DISTINCT m.team_id, 'follow_up' FROM messages m JOIN teams t ON t.id = m.team_id
     WHERE m.kind = 'follow_up' AND t.automation_paused_at IS NULL
       AND (m.status = 'claimed' OR (m.status = 'pending' AND m.not_before <= now()))
"""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replies_with_work(inbound: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION outreach_replies_with_work(
            p_inbound_stale interval, p_sending_stale interval
        )
        RETURNS TABLE (team_id uuid, work text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            {inbound}
            {_OTHER_WORK}
        $$
    """


# An opted-out phone suppressed at once by the webhook (the replies run records the rest).
_SUPPRESS = """
    CREATE FUNCTION outreach_suppress_opt_out(
        p_team uuid, p_phone text, p_reason text, p_source text
    )
    RETURNS void
    LANGUAGE sql VOLATILE SET search_path = public, pg_temp AS $$
        INSERT INTO phone_flags (team_id, phone, flag, reason, source)
        VALUES (p_team, p_phone, 'suppressed', p_reason, p_source)
        ON CONFLICT DO NOTHING
    $$
"""

# A stored message the webhook classified but leaves to the replies run: its class, and
# for an opt-out the phone suppressed at once, so no send slips out before processing.
# Runs as the caller, for the one team it names.
_QUEUE = """
    CREATE FUNCTION outreach_queue_inbound(
        p_team uuid, p_id uuid, p_classification text, p_confidence smallint,
        p_phone text, p_suppress_reason text, p_suppress_source text
    )
    RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
    BEGIN
        PERFORM set_config('app.team_id', p_team::text, true);
        UPDATE inbound_messages
           SET status = 'queued', classification = p_classification,
               confidence = p_confidence
         WHERE team_id = p_team AND id = p_id AND status = 'received';
        IF FOUND AND p_suppress_reason IS NOT NULL THEN
            PERFORM outreach_suppress_opt_out(
                p_team, p_phone, p_suppress_reason, p_suppress_source
            );
        END IF;
    END
    $$
"""

# Routes by the number (the one cross-tenant read the webhook needs) and stores the message
# for the number's team, in one round trip; when the webhook classified it already for the
# team's client (`p_client`), stored queued (as outreach_queue_inbound would leave it). No
# row: the number is nobody's. inbound_id NULL: the SID is stored already (Twilio retried).
_STORE = """
    CREATE FUNCTION outreach_store_inbound(
        p_id uuid, p_sid text, p_channel text, p_from text, p_to text, p_body text,
        p_opt_out_type text, p_client text, p_classification text, p_confidence smallint,
        p_suppress_reason text, p_suppress_source text
    )
    RETURNS TABLE (team_id uuid, number_id uuid, client text, inbound_id uuid, queued boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        v_team uuid;
        v_number uuid;
        v_client text;
        v_queue boolean;
        v_id uuid;
    BEGIN
        SELECT n.team_id, n.id, t.client INTO v_team, v_number, v_client
          FROM sending_numbers n JOIN teams t ON t.id = n.team_id
         WHERE n.phone_number = p_to;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        v_queue := p_client IS NOT NULL AND p_client = v_client;
        -- The row-level policy holds for this function's owner too (FORCE): write as the
        -- number's team, for this transaction only.
        PERFORM set_config('app.team_id', v_team::text, true);
        INSERT INTO inbound_messages AS i (
            team_id, id, provider_sid, channel, from_phone, to_phone, body, opt_out_type,
            sending_number_id, status, classification, confidence
        )
        VALUES (
            v_team, p_id, p_sid, p_channel, p_from, p_to, p_body, p_opt_out_type, v_number,
            CASE WHEN v_queue THEN 'queued' ELSE 'received' END,
            CASE WHEN v_queue THEN p_classification END,
            CASE WHEN v_queue THEN p_confidence END
        )
        ON CONFLICT (provider_sid) DO NOTHING
        RETURNING i.id INTO v_id;
        IF v_id IS NOT NULL AND v_queue AND p_suppress_reason IS NOT NULL THEN
            PERFORM outreach_suppress_opt_out(
                v_team, p_from, p_suppress_reason, p_suppress_source
            );
        END IF;
        RETURN QUERY SELECT v_team, v_number, v_client, v_id, v_id IS NOT NULL AND v_queue;
    END
    $$
"""

_FUNCTIONS = (
    "outreach_suppress_opt_out(uuid, text, text, text)",
    "outreach_store_inbound("
    "uuid, text, text, text, text, text, text, text, text, smallint, text, text)",
    "outreach_queue_inbound(uuid, uuid, text, smallint, text, text, text)",
)


def upgrade() -> None:
    op.add_column("inbound_messages", sa.Column("classification", sa.String(40), nullable=True))
    op.add_column("inbound_messages", sa.Column("confidence", sa.SmallInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_inbound_messages_classification"),
        "inbound_messages",
        _in("classification", _CLASSES),
    )
    op.drop_constraint(op.f("ck_inbound_messages_status"), "inbound_messages", type_="check")
    op.create_check_constraint(
        op.f("ck_inbound_messages_status"), "inbound_messages", _in("status", _STATUSES)
    )
    op.execute(_replies_with_work(_INBOUND_WORK))
    op.execute(_SUPPRESS)
    op.execute(_QUEUE)
    op.execute(_STORE)
    role = op.get_context().config.attributes["app_role"]
    for fn in _FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {fn} TO "{role}"')


def downgrade() -> None:
    for fn in reversed(_FUNCTIONS):
        op.execute(f"DROP FUNCTION {fn}")
    op.execute(_replies_with_work(_INBOUND_WORK_0009))
    op.execute("ALTER TABLE inbound_messages NO FORCE ROW LEVEL SECURITY")
    op.execute("UPDATE inbound_messages SET status = 'received' WHERE status = 'queued'")
    op.execute("ALTER TABLE inbound_messages FORCE ROW LEVEL SECURITY")
    op.drop_constraint(op.f("ck_inbound_messages_status"), "inbound_messages", type_="check")
    op.create_check_constraint(
        op.f("ck_inbound_messages_status"), "inbound_messages", _in("status", _STATUSES_BEFORE)
    )
    op.drop_constraint(
        op.f("ck_inbound_messages_classification"), "inbound_messages", type_="check"
    )
    op.drop_column("inbound_messages", "confidence")
    op.drop_column("inbound_messages", "classification")

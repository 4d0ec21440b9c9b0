"""the send engine's hot path: the rate limiter's request in one round trip
(`outreach_rate_limit_take` honours a pause, takes the next pacing slot and a slot in every
window, all or nothing, in one call; it was a transaction of its own for the pacing, then
one of a select and an upsert per window); the claim's due index in the claim's order, so
a batch reads its 50 rows instead of sorting every pending message of the campaign

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 16:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_FUNCTION = (
    "outreach_rate_limit_take(text, timestamptz, interval, interval, text[], integer[], integer[])"
)

# SECURITY INVOKER: the application role already reads and writes the three tables.
# `due_at`: when taken, the time of the caller's slot (sleep until then, then call); when not,
# when to ask again (the pause's end or the full window's). A full window rolls back the
# block (the pacing slot and the other windows' slots): nothing is taken.
_TAKE = """
    CREATE FUNCTION outreach_rate_limit_take(
        p_provider text, p_now timestamptz, p_interval interval, p_catch_up interval,
        p_windows text[], p_seconds integer[], p_limits integer[],
        OUT taken boolean, OUT due_at timestamptz
    ) LANGUAGE plpgsql AS $$
    DECLARE
        v_start timestamptz;
    BEGIN
        taken := false;
        SELECT until INTO due_at FROM provider_pauses WHERE provider = p_provider;
        IF due_at > p_now THEN
            RETURN;
        END IF;
        due_at := p_now;
        BEGIN
            IF p_interval IS NOT NULL THEN
                INSERT INTO provider_pacing AS p (provider, next_at)
                VALUES (p_provider, p_now + p_interval)
                ON CONFLICT (provider) DO UPDATE
                SET next_at = GREATEST(p.next_at, p_now - p_catch_up) + p_interval
                RETURNING p.next_at - p_interval INTO due_at;
            END IF;
            -- Counted in the windows of the slot's time, when the call goes out.
            FOR i IN 1 .. coalesce(array_length(p_windows, 1), 0) LOOP
                v_start := to_timestamp(
                    floor(extract(epoch FROM due_at) / p_seconds[i]) * p_seconds[i]);
                INSERT INTO provider_rate_windows AS w (provider, "window", window_start, used)
                VALUES (p_provider, p_windows[i], v_start, 1)
                ON CONFLICT (provider, "window", window_start) DO UPDATE
                SET used = w.used + 1 WHERE w.used < p_limits[i];
                IF NOT FOUND THEN
                    due_at := v_start + make_interval(secs => p_seconds[i]);
                    RAISE EXCEPTION USING ERRCODE = 'RL001';
                END IF;
            END LOOP;
        EXCEPTION WHEN SQLSTATE 'RL001' THEN
            RETURN;
        END;
        taken := true;
    END
    $$
"""


# The claim orders due messages by (not_before, lead_id, step) and takes a batch of them.
_DUE_BEFORE = ["team_id", "campaign_id", "status", "not_before"]
_DUE = [*_DUE_BEFORE, "lead_id", "step"]


def upgrade() -> None:
    op.execute(_TAKE)
    role = op.get_context().config.attributes["app_role"]
    op.execute(f"REVOKE ALL ON FUNCTION {_FUNCTION} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {_FUNCTION} TO "{role}"')
    op.drop_index("ix_messages_due", table_name="messages")
    op.create_index("ix_messages_due", "messages", _DUE)


def downgrade() -> None:
    op.drop_index("ix_messages_due", table_name="messages")
    op.create_index("ix_messages_due", "messages", _DUE_BEFORE)
    op.execute(f"DROP FUNCTION {_FUNCTION}")

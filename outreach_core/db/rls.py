"""Row-level security statements shared by migrations. Policies read the tenant from
`app.team_id`, set per transaction; NULLIF turns the '' left after a SET LOCAL ends into
NULL, so a tenant-less query sees nothing instead of failing on a ''::uuid cast."""

from __future__ import annotations

from alembic import op

CURRENT_TEAM = "NULLIF(current_setting('app.team_id', true), '')::uuid"


def enable_tenant_rls(table: str, column: str = "team_id") -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    # Without FORCE the table owner would bypass the policy.
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = {CURRENT_TEAM}) WITH CHECK ({column} = {CURRENT_TEAM})"
    )


def grant_app(role: str, tables: list[str]) -> None:
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    for table in tables:
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')
    op.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')

"""Alembic environment: the URL comes from the caller (outreach_core.db.migrate), never from
an ini file, so secrets stay in the environment."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from outreach_core.db.tables import Base

config = context.config
url = config.attributes["url"]

engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()

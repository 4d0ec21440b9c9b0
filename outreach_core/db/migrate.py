"""Bring a database to the latest schema and make sure the application role exists."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from outreach_core.db.engine import ensure_database, owner_url
from outreach_core.settings import Settings, get_settings


def alembic_config(url: URL) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("outreach_core.db") / "migrations"))
    config.attributes["url"] = url
    return config


def ensure_app_role(url: URL, role: str, password: str | None) -> None:
    """The role the application connects as: it can log in, owns nothing, and can neither
    bypass RLS nor create roles or databases. Roles are cluster-wide, hence not a migration."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
            verb = "ALTER" if exists else "CREATE"
            options = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            # Identifiers cannot be bound parameters; the role name comes from our settings.
            quoted = conn.dialect.identifier_preparer.quote(role)
            conn.execute(text(f"{verb} ROLE {quoted} {options}"))
            if password:
                conn.execute(text(f"ALTER ROLE {quoted} PASSWORD :p").bindparams(p=password))
    finally:
        engine.dispose()


def migrate(settings: Settings | None = None, url: URL | None = None) -> None:
    settings = settings or get_settings()
    url = url or owner_url(settings)
    ensure_database(url)
    password = settings.app_db_password.get_secret_value() if settings.app_db_password else None
    ensure_app_role(url, settings.app_db_role, password)
    config = alembic_config(url)
    config.attributes["app_role"] = settings.app_db_role
    command.upgrade(config, "head")

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
            existing = conn.execute(
                text(
                    "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole "
                    "FROM pg_roles WHERE rolname = :r"
                ),
                {"r": role},
            ).one_or_none()
            options = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            # Identifiers cannot be bound parameters; the role name comes from our settings.
            quoted = conn.dialect.identifier_preparer.quote(role)
            if existing is None:
                conn.execute(text(f"CREATE ROLE {quoted} {options}"))
            elif tuple(existing) != (True, False, False, False, False):
                # On managed servers an administrator creates the role; we only fix it when
                # it could bypass RLS or cannot log in (and say so if we may not).
                conn.execute(text(f"ALTER ROLE {quoted} {options}"))
            if password:
                # Utility statements take no bind parameters; quote the literal server-side
                # so the password never appears in the statement text or a traceback.
                conn.execute(
                    text(
                        "SELECT set_config('outreach.role', :r, false), "
                        "set_config('outreach.pw', :p, false)"
                    ),
                    {"r": role, "p": password},
                )
                try:
                    conn.execute(
                        text(
                            "DO $$BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', "
                            "current_setting('outreach.role'), current_setting('outreach.pw'));"
                            " END$$"
                        )
                    )
                finally:
                    conn.execute(text("RESET outreach.pw"))
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

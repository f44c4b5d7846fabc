"""Run the Alembic migrations from code (the CLI and the tests use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    """Return an Alembic config for the project's migrations against ``url``."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade(url: str, target: str = "heads") -> None:
    """Upgrade the schema to ``target`` (every head by default)."""
    command.upgrade(alembic_config(url), target)


def downgrade(url: str, target: str = "base") -> None:
    """Downgrade the schema to ``target`` (nothing by default)."""
    command.downgrade(alembic_config(url), target)

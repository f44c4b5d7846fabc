"""Run the Alembic migrations from code (the CLI and the tests use this).

Migrations run as the schema's owner; after an upgrade the owner grants the app's role (the
role of DATABASE_URL) its privileges on every table, old and new (app/db_roles.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool, text

from app import db_roles

ROOT = Path(__file__).resolve().parent.parent
LOGGER = logging.getLogger(__name__)


#: Tables of PostGIS and its extensions in the public schema: not the project's.
POSTGIS_TABLES = frozenset({"spatial_ref_sys", "layer", "topology"})


#: Tables derived from grids and households by triggers: tile data (revision 0015), the shared
#: cache of encoded tiles (revision 0022), the search's places (revision 0023) and terms (0031),
#: the locate's cards of grids (revision 0035), the density of each grid's subtree (revision 0038).
TILE_TABLES = frozenset(
    {
        "grid_tile",
        "household_cell",
        "household_subtree_cell",
        "tile_cache",
        "search_place",
        "search_term",
        "locate_card",
    }
)


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """Which schema objects Alembic compares with the models (autogenerate and the schema
    test): not PostGIS's own tables; spatial indexes as GeoAlchemy2 reads them; not the tile
    tables kept by triggers; not the search's
    GIN trigram indexes (``*_trgm``, revision 0014), which live in that revision only: several are
    over expressions, which autogenerate cannot compare."""
    if type_ == "table" and name in POSTGIS_TABLES:
        return False
    if type_ == "index" and reflected and compare_to is None and (name or "").endswith("_trgm"):
        return False
    # The e-map's tile tables (revision 0015, with partial indexes per zoom band) and the other
    # tables kept by triggers belong to their revisions, not to the models.
    if type_ == "table" and name in TILE_TABLES:
        return False
    if (
        type_ == "index"
        and reflected
        and compare_to is None
        and (
            (name or "").startswith(("ix_grid_tile_", "ix_household_cell_", "ix_basemap_feature_z"))
        )
    ):
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


#: Heads that a later change of the graph made a dependency of another revision, with that
#: revision: 0033_track_segments changes the patrol table of 0028_patrols, on another branch,
#: and names it in ``depends_on`` (without it some order of the branches ran 0033 first, on a
#: database with no patrol table). Databases upgraded before that keep both among their heads,
#: which Alembic refuses ("overlaps"); it writes only the later one itself.
SUPERSEDED_HEADS = {"0028_patrols": "0033_track_segments"}


def drop_superseded_heads(connection) -> int:  # type: ignore[no-untyped-def]
    """Take out of the version table each head listed in ``SUPERSEDED_HEADS`` that is there with
    the revision depending on it (as Alembic would have left it); the number taken out."""
    if connection.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
        return 0
    stored = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    # Read first: a role that may only read the table (the app's, starting on a current
    # schema) writes nothing when there is nothing to take out.
    gone = [head for head, later in SUPERSEDED_HEADS.items() if {head, later} <= stored]
    for head in gone:
        connection.execute(
            text("DELETE FROM alembic_version WHERE version_num = :head"), {"head": head}
        )
    return len(gone)


def alembic_config(url: str) -> Config:
    """Return an Alembic config for the project's migrations against ``url``."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    return cfg


#: Key of the advisory lock that serialises schema upgrades: app nodes started at the same time
#: each upgrade and grant, and two GRANTs on one object at once fail ("tuple concurrently updated").
UPGRADE_LOCK = (7302, 1)


def upgrade(url: str, target: str = "heads", app_url: str | None = None) -> None:
    """Upgrade the schema to ``target`` (every head by default) as the role of ``url``; then,
    when ``app_url`` connects as another role, grant that role its privileges. One process at a
    time per database does it (an advisory lock held for the whole upgrade); the next finds
    the schema current and the grants given."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        # Autocommit: the lock is the session's, and no transaction stays open beside the upgrade.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(
                text("SELECT pg_advisory_lock(:a, :b)"),
                {"a": UPGRADE_LOCK[0], "b": UPGRADE_LOCK[1]},
            )
            try:
                command.upgrade(alembic_config(url), target)
                if app_url:
                    grant_app_role(url, app_url)
            finally:
                conn.execute(
                    text("SELECT pg_advisory_unlock(:a, :b)"),
                    {"a": UPGRADE_LOCK[0], "b": UPGRADE_LOCK[1]},
                )
    finally:
        engine.dispose()


def upgrade_app(config: Mapping[str, Any], target: str = "heads") -> None:
    """Upgrade the database of an app's config: as MIGRATION_DATABASE_URL's role, granting
    DATABASE_URL's role."""
    app_url = config["DATABASE_URL"]
    upgrade(config.get("MIGRATION_DATABASE_URL") or app_url, target, app_url=app_url)


def downgrade(url: str, target: str = "base") -> None:
    """Downgrade the schema to ``target`` (nothing by default)."""
    command.downgrade(alembic_config(url), target)


def _role_of(url: str) -> str:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT current_user")).scalar_one())
    finally:
        engine.dispose()


def grant_app_role(owner_url: str, app_url: str) -> bool:
    """Give the role of ``app_url`` its privileges on what the role of ``owner_url`` owns, and
    make the owner's future tables and sequences the app's too. Return False (nothing done)
    when both URLs are the same role."""
    owner, app_role = _role_of(owner_url), _role_of(app_url)
    if owner == app_role:
        LOGGER.info("the app and the migrations share the role %s: no grants", owner)
        return False
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            for sql in db_roles.grant_statements(owner, app_role):
                cursor.execute(sql)  # no parameters: the % of format() stays as it is
    finally:
        engine.dispose()
    return True

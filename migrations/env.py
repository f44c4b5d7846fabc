"""Alembic environment: the schema of app.models, with GeoAlchemy2's helpers for spatial types."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool

from app.migrate import drop_superseded_heads, include_object
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from app.config import from_environment
    from app.embedded_pg import default_cluster

    # Migrations run as the schema's owner: the migration role when one is named, else the
    # embedded cluster's owner role (app/db_roles.py, "gridgov migrate" also grants the app).
    env = from_environment()
    if env.get("DATABASE_URL"):
        return env.get("MIGRATION_DATABASE_URL") or env["DATABASE_URL"]
    cluster = default_cluster()
    cluster.start()
    return cluster.owner_url()


_include_object = include_object  # PostGIS's own tables are not ours (app/migrate.py)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        include_object=_include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        # Before Alembic reads the heads: the version table as the current graph would write it.
        drop_superseded_heads(connection)
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""The schema comes from Alembic: upgrade to head and downgrade to base both work."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from psycopg.errors import CheckViolation
from sqlalchemy import create_engine, inspect, text

from app import migrate as mig

CORE_TABLES = {
    "grid",
    "household",
    "worker",
    "grid_assignment",
    "service_point",
    "camera",
    "department",
    "case",
    "case_event",
}


@pytest.fixture()
def scratch_url(cluster):  # type: ignore[no-untyped-def]
    """A fresh database as its owner (the role the migrations run as)."""
    cluster.recreate_database("gridgov_test_migrations")
    yield cluster.owner_url("gridgov_test_migrations")
    cluster.psql("postgres", 'DROP DATABASE IF EXISTS "gridgov_test_migrations" WITH (FORCE)')


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    mig.upgrade(scratch_url)
    assert CORE_TABLES <= _tables(scratch_url)
    mig.downgrade(scratch_url, "base")
    assert not (CORE_TABLES & _tables(scratch_url))
    mig.upgrade(scratch_url)
    assert CORE_TABLES <= _tables(scratch_url)


def test_database_enforces_geometry_rules(scratch_url: str) -> None:
    """Invalid geometry, a wrong SRID and out-of-range points are refused by PostGIS itself."""
    mig.upgrade(scratch_url)
    engine = create_engine(scratch_url)
    bowtie = "SRID=4326;MULTIPOLYGON(((117 31,117.01 31.01,117.01 31,117 31.01,117 31)))"
    square = "MULTIPOLYGON(((117 31,117.01 31,117.01 31.01,117 31.01,117 31)))"
    # Each statement with the error PostgreSQL must give: the check constraint it breaks by name,
    # or the column's SRID check (the message names both SRIDs).
    statements = [
        (f"INSERT INTO grid (code, name, level, geom, area_m2) VALUES ('X1', 'x', 1, '{bowtie}', 1)",
         CheckViolation, 'violates check constraint "ck_grid_geom_valid"'),
        (f"INSERT INTO grid (code, name, level, geom, area_m2) VALUES ('X2', 'x', 1, 'SRID=3857;{square}', 1)",
         psycopg.errors.InvalidParameterValue, "Geometry SRID (3857) does not match column SRID (4326)"),
        (f"INSERT INTO grid (code, name, level, geom, area_m2) VALUES ('X3', 'x', 7, 'SRID=4326;{square}', 1)",
         CheckViolation, 'violates check constraint "ck_grid_level_range"'),
        ("INSERT INTO service_point (name, kind, geom) VALUES ('p', 'station', 'SRID=4326;POINT(191 31)')",
         CheckViolation, 'violates check constraint "ck_service_point_lonlat_range"'),
    ]
    try:
        for sql, kind, message in statements:
            with engine.connect() as conn, pytest.raises(sqlalchemy.exc.DBAPIError) as err:
                conn.execute(text(sql))
            assert isinstance(err.value.orig, kind), (sql, type(err.value.orig))
            assert message in str(err.value.orig), (sql, str(err.value.orig))
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO grid (code, name, level, geom, area_m2) VALUES ('OK', 'x', 1, 'SRID=4326;{square}', 1)"
                )
            )
            assert conn.execute(text("SELECT count(*) FROM grid")).scalar() == 1
    finally:
        engine.dispose()

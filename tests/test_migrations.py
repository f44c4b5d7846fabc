"""The schema comes from Alembic: upgrade to head and downgrade to base both work, every
revision steps down and up on its own, the models match the migrations, seed data is frozen."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from psycopg.errors import CheckViolation
from sqlalchemy import create_engine, inspect, text

from app import migrate as mig
from app.migrate import ROOT
from app.models import Base
from tests.conftest import copy_database, own_database

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
    name = own_database("gridgov_test_migrations")
    cluster.recreate_database(name)
    yield cluster.owner_url(name)
    cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def migrated_url(cluster, migrated_template: str):  # type: ignore[no-untyped-def]
    """A fresh database migrated to every head, as its owner: a copy of the run's migrated
    template (which ``mig.upgrade`` made from nothing, as ``scratch_url`` would be)."""
    name = own_database("gridgov_test_migrated_copy")
    copy_database(cluster, migrated_template, name)
    yield cluster.owner_url(name)
    cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def test_database_enforces_geometry_rules(migrated_url: str) -> None:
    """Invalid geometry, a wrong SRID and out-of-range points are refused by PostGIS itself."""
    engine = create_engine(migrated_url)
    bowtie = "SRID=4326;MULTIPOLYGON(((117 31,117.01 31.01,117.01 31,117 31.01,117 31)))"
    square = "MULTIPOLYGON(((117 31,117.01 31,117.01 31.01,117 31.01,117 31)))"
    # Each statement with the error PostgreSQL must give: the check constraint it breaks by name,
    # or the column's SRID check (the message names both SRIDs).
    statements = [
        (
            f"INSERT INTO grid (code, name, level, geom, area_m2) VALUES ('X1', 'x', 1, '{bowtie}', 1)",
            CheckViolation,
            'violates check constraint "ck_grid_geom_valid"',
        ),
        (
            f"INSERT INTO grid (code, name, level, geom, area_m2) VALUES ('X2', 'x', 1, 'SRID=3857;{square}', 1)",
            psycopg.errors.InvalidParameterValue,
            "Geometry SRID (3857) does not match column SRID (4326)",
        ),
        (
            f"INSERT INTO grid (code, name, level, geom, area_m2) VALUES ('X3', 'x', 7, 'SRID=4326;{square}', 1)",
            CheckViolation,
            'violates check constraint "ck_grid_level_range"',
        ),
        (
            "INSERT INTO service_point (name, kind, geom) VALUES ('p', 'station', 'SRID=4326;POINT(191 31)')",
            CheckViolation,
            'violates check constraint "ck_service_point_lonlat_range"',
        ),
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


# --- guard-rails: the models are the migrations, every step goes down and up ------------------


def test_the_models_match_the_migrated_schema(migrated_url: str) -> None:
    """What ``alembic revision --autogenerate`` would write after all migrations: nothing.

    A column, index, foreign key, type or server default in a model and not in a migration
    (or the other way round) shows here with its table; PostGIS's own tables and what only
    migrations hold (plpgsql functions, triggers) are not compared.
    """
    engine = create_engine(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_object": mig.include_object,
                },
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], "models and migrations differ:\n" + "\n".join(map(str, diff))


SNAPSHOT_SQL = """
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm')
  AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relname NOT IN ('spatial_ref_sys', 'alembic_version')
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint
WHERE connamespace = 'public'::regnamespace AND conrelid <> 0
  AND conrelid::regclass::text NOT IN ('spatial_ref_sys', 'alembic_version')
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename NOT IN ('spatial_ref_sys', 'alembic_version')
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = p.oid AND e.deptype = 'e')
UNION ALL
SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'sequence ' || relname FROM pg_class
WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'extension ' || extname FROM pg_extension
"""


def _snapshot(url: str) -> tuple[frozenset[str], frozenset[str]]:
    """The schema (columns, constraints, indexes, functions, triggers, sequences) and the
    revisions recorded in alembic_version."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            schema = frozenset(conn.execute(text(SNAPSHOT_SQL)).scalars())
            has_version = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            heads = frozenset(
                conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
                if has_version
                else []
            )
    finally:
        engine.dispose()
    return schema, heads


def _heads_of(applied: list[Script]) -> frozenset[str]:
    parents = {p for s in applied for p in s._all_down_revisions}
    return frozenset(s.revision for s in applied if s.revision not in parents)


def test_a_walk_up_and_down_through_every_revision(cluster) -> None:  # type: ignore[no-untyped-def]
    """Every revision, one at a time, across the branches and the merge: up from nothing to
    every head, then down again, each downgrade giving back exactly the schema the step below
    had on the way up."""
    walk = own_database("gridgov_test_walk")
    cluster.recreate_database(walk)
    url = cluster.owner_url(walk)
    cfg = mig.alembic_config(url)
    order = list(reversed(list(ScriptDirectory.from_config(cfg).walk_revisions())))
    assert len(order) >= 10
    try:
        seen = [_snapshot(url)]
        for k, script in enumerate(order):
            command.upgrade(cfg, script.revision)
            seen.append(_snapshot(url))
            assert seen[-1][1] == _heads_of(order[: k + 1]), script.revision
        for k in range(len(order) - 1, -1, -1):
            script = order[k]
            if len(script._all_down_revisions) > 1:
                # A merge: step back to its parents (all of them stay).
                command.downgrade(cfg, script._all_down_revisions[0])
            else:
                command.downgrade(cfg, f"{script.revision}@-1")
            schema, heads = _snapshot(url)
            assert heads == seen[k][1], f"after taking back {script.revision}"
            assert schema == seen[k][0], (
                f"taking back {script.revision} leaves "
                f"{sorted(schema - seen[k][0])} and misses {sorted(seen[k][0] - schema)}"
            )
    finally:
        cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{walk}" WITH (FORCE)')


def test_each_head_upgrades_from_nothing_on_its_own(cluster) -> None:  # type: ignore[no-untyped-def]
    """Each head with only what it needs: a revision that uses a table of another branch must
    name that branch (``depends_on``), or some order of the branches runs it first and fails."""
    name = own_database("gridgov_test_each_head")
    cfg_url = cluster.owner_url(name)
    heads = ScriptDirectory.from_config(mig.alembic_config(cfg_url)).get_heads()
    assert len(heads) > 1
    try:
        for head in sorted(heads):
            cluster.recreate_database(name)
            command.upgrade(mig.alembic_config(cfg_url), head)
    finally:
        cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_database_that_kept_a_superseded_head_upgrades(scratch_url: str) -> None:
    """A database upgraded before 0033_track_segments named 0028_patrols as a dependency keeps
    both as heads; the next upgrade still reaches every head (Alembic alone refuses: the two
    "overlap")."""
    cfg = mig.alembic_config(scratch_url)
    for head in mig.SUPERSEDED_HEADS.values():
        command.upgrade(cfg, head)
    engine = create_engine(scratch_url)
    try:
        with engine.begin() as conn:
            for head in mig.SUPERSEDED_HEADS:
                conn.execute(text("INSERT INTO alembic_version VALUES (:h)"), {"h": head})
        mig.upgrade(scratch_url)
        with engine.connect() as conn:
            stored = set(conn.scalars(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()
    # Every head, the superseded one as Alembic writes it on a fresh database: in its dependant.
    heads = set(ScriptDirectory.from_config(cfg).get_heads())
    assert stored == heads - set(mig.SUPERSEDED_HEADS)
    assert set(mig.SUPERSEDED_HEADS.values()) <= stored


def test_the_app_role_upgrading_a_current_schema_writes_nothing(database_url: str) -> None:
    """An app node started as the app's role (which may only read the version table) on a
    current schema: the upgrade finds nothing to do and writes nothing."""
    mig.upgrade(database_url)


def test_seed_data_is_written_into_its_migration(scratch_url: str) -> None:
    """Revision 0005 writes the categories and calendar it holds itself, never today's data
    files: an old revision gives the same rows whatever those files say now."""
    path = ROOT / "migrations" / "versions" / "0005_case_loop.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {"open", "read_text", "DictReader", "Path", "reader"}
    module = (
        ScriptDirectory.from_config(mig.alembic_config(scratch_url))
        .get_revision("0005_case_loop")
        .module
    )
    mig.upgrade(scratch_url, "0005_case_loop")
    engine = create_engine(scratch_url)
    try:
        with engine.connect() as conn:
            categories = conn.execute(
                text(
                    "SELECT code, name, time_limit_hours, escalation_department_code,"
                    " verify_required, camera_event_types, description FROM case_category"
                    " ORDER BY id"
                )
            ).all()
            days = conn.execute(
                text("SELECT day::text, is_workday, name, source FROM work_calendar ORDER BY day")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in categories] == [tuple(c) for c in module.CATEGORIES]
    assert [tuple(r) for r in days] == [
        (d, w, n, None if s is None else module.SOURCES[s]) for d, w, n, s in module.CALENDAR
    ]
    assert {c[0] for c in module.CATEGORIES} >= {"other", "fire_hazard", "garbage"}
    assert len(days) > 80 and days[0][0] == "2025-01-01"


def test_an_override_area_names_a_known_case_category(scratch_url: str) -> None:
    mig.upgrade(scratch_url)
    engine = create_engine(scratch_url)
    square = "SRID=4326;MULTIPOLYGON(((117 31,117.01 31,117.01 31.01,117 31.01,117 31)))"
    insert = (
        "INSERT INTO override_area (name, category, geom, area_m2, department_id)"
        f" VALUES ('路段', :c, '{square}', 1, (SELECT id FROM department LIMIT 1))"
    )
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO department (code, name) VALUES ('CG', '城管')"))
        with engine.connect() as conn, pytest.raises(Exception) as err:
            conn.execute(text(insert), {"c": "no_such_category"})
        assert "fk_override_area_category_case_category" in str(err.value)
        with engine.begin() as conn:
            conn.execute(text(insert), {"c": "garbage"})
            conn.execute(text("UPDATE case_category SET code = 'rubbish' WHERE code = 'garbage'"))
            assert conn.execute(text("SELECT category FROM override_area")).scalar() == "rubbish"
    finally:
        engine.dispose()


#: Named before the scheme; their ids live on in every database's alembic_version.
NAMED_BEFORE_THE_SCHEME = {"7c1e5b2d9a40"}
#: Numbers given twice before the scheme was checked.
NUMBERS_SHARED_BEFORE = {"0010"}


HOUSEHOLD_PAGES = (
    "SELECT count(*), count(DISTINCT (ctid::text::point)[0]) FROM household "
    "WHERE geom && ST_MakeEnvelope(117.20, 31.80, 117.21, 31.81, 4326)"
)
HOUSEHOLD_INDEXES = "SELECT indexname FROM pg_indexes WHERE tablename = 'household' ORDER BY 1"


def test_revision_0037_writes_the_households_in_the_order_of_their_place(
    scratch_url: str,
) -> None:
    """Households written in no order in space (as a source file may give them): those of a
    small area lie one a page; after revision 0037 they share a few pages, and every row is
    still there."""
    mig.upgrade(scratch_url, "0036_dense_tile_geometry")
    engine = create_engine(scratch_url)
    try:
        with engine.begin() as conn:
            grid = conn.execute(
                text(
                    "INSERT INTO grid (code, name, level, kind, geom, area_m2) VALUES ('T01', "
                    "'测试街道', 1, 'comprehensive', ST_Multi(ST_MakeEnvelope(117.2, 31.8, "
                    "117.3, 31.9, 4326)), 1e8) RETURNING id"
                )
            ).scalar()
            conn.execute(
                text(
                    "INSERT INTO household (grid_id, geom, people, address) "
                    "SELECT :grid, ST_SetSRID(ST_MakePoint(117.2 + random() * 0.1, "
                    "31.8 + random() * 0.1), 4326), 1 + i % 5, '测试路' || i || '号' "
                    "FROM generate_series(1, 40000) AS i"
                ),
                {"grid": grid},
            )
            rows, pages = conn.execute(text(HOUSEHOLD_PAGES)).one()
            before = conn.execute(text("SELECT sum(people), sum(id) FROM household")).one()
            indexes = conn.execute(text(HOUSEHOLD_INDEXES)).scalars().all()
            assert rows > 200 and pages > rows * 0.5, (rows, pages)
        mig.upgrade(scratch_url, "0037_household_order")
        with engine.connect() as conn:
            after_rows, after_pages = conn.execute(text(HOUSEHOLD_PAGES)).one()
            after = conn.execute(text("SELECT sum(people), sum(id) FROM household")).one()
            indexes_after = conn.execute(text(HOUSEHOLD_INDEXES)).scalars().all()
    finally:
        engine.dispose()
    assert after_rows == rows and tuple(after) == tuple(before)
    assert after_pages * 10 < rows, (rows, after_pages)
    # The b-tree made for the rewrite is gone; the table's own indexes are all back.
    assert indexes_after == indexes and "ix_household_geom" in indexes


def test_revisions_follow_one_naming_scheme() -> None:
    """A revision is named NNNN_<what_it_does> in a file of the same name, its number unique
    and above the numbers of the revisions it follows."""
    scripts = list(
        ScriptDirectory.from_config(mig.alembic_config("postgresql://")).walk_revisions()
    )
    named = [s for s in scripts if s.revision not in NAMED_BEFORE_THE_SCHEME]
    for s in named:
        assert re.fullmatch(r"\d{4}(_[a-z0-9]+)*", s.revision), s.revision
        # (the base, 0001, lives in 0001_core_schema.py: revisions name it as their parent)
        assert Path(s.path).stem == s.revision or s.revision == "0001", s.path
        for parent in s._all_down_revisions:
            if parent not in NAMED_BEFORE_THE_SCHEME:
                assert int(s.revision[:4]) > int(parent[:4]), (s.revision, parent)
    numbers = Counter(s.revision[:4] for s in named)
    assert {n for n, c in numbers.items() if c > 1} <= NUMBERS_SHARED_BEFORE, numbers

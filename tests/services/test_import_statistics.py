"""An import, run as the app's role, leaves the planner the statistics of what it loaded: a large
import has the tables it wrote analysed at once (through ``gridgov_analyze``, which runs as the
schema's owner), a small one into a large table leaves them to autovacuum, and the function
analyses only tables of the schema, whatever names it is given."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.cli import main
from app.services import audit, import_jobs
from app.services.importer import options as import_options
from app.services.importer.sample import SAMPLE_DIR, SAMPLE_FILES
from tests.conftest import copy_database, own_database

#: The planner's row count of a table (from its last analysis) beside its real count, and
#: whether it was analysed by hand (as ``gridgov_analyze`` does; autovacuum's is another column).
STATS = """SELECT c.reltuples, (SELECT count(*) FROM {t}), s.last_analyze IS NOT NULL
           FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
           WHERE c.oid = '{t}'::regclass"""


@pytest.fixture()
def fresh_url(cluster, migrated_template: str):  # type: ignore[no-untyped-def]
    """An empty, migrated database of its own, as the app's role; dropped afterwards."""
    name = own_database("gridgov_import_stats")
    url = copy_database(cluster, migrated_template, name)
    try:
        yield url
    finally:
        cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stats(url: str, table: str) -> tuple[float, int, bool]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            row = c.execute(text(STATS.format(t=table))).one()
            return float(row[0]), int(row[1]), bool(row[2])
    finally:
        engine.dispose()


def _cli_import(url: str, kind: str, path: Path) -> None:
    result = CliRunner(env={"GRIDGOV_DATABASE_URL": url}).invoke(main, ["import", kind, str(path)])
    assert result.exit_code == 0, result.output


def _job_import(url: str, kind: str, path: Path) -> dict:
    """Run an import job the way the server's background thread does."""
    engine = create_engine(url)
    try:
        with Session(engine) as work, Session(engine) as status:
            job_id = import_jobs.create_job(
                status, kind=kind, source=path.name, dry_run=False, user_id=None, scope=None
            )
            status.commit()
            import_jobs.run_job(
                work,
                status,
                job_id,
                path,
                crs=None,
                mapping={},
                options=import_options.ImportOptions(),
                who=audit.Who(username="test"),
                live=False,
            )
            row = status.execute(
                text("SELECT status, report, error FROM import_job WHERE id = :id"),
                {"id": job_id},
            ).one()
            assert row[0] == "done", row[2]
            return row[1]
    finally:
        engine.dispose()


def test_a_large_import_is_analysed_at_once_and_a_small_one_is_left_to_autovacuum(
    fresh_url: str, tmp_path: Path
) -> None:
    # The migrated database's tables were analysed empty (or never): the planner expects nothing.
    assert _stats(fresh_url, "household")[0] <= 0
    _cli_import(fresh_url, "departments", SAMPLE_DIR / SAMPLE_FILES["departments"])
    _cli_import(fresh_url, "grids", SAMPLE_DIR / SAMPLE_FILES["grids"])
    planned, real, by_hand = _stats(fresh_url, "grid")
    assert by_hand and planned == real > 100
    planned, real, by_hand = _stats(fresh_url, "grid_tile")  # kept by the grid triggers
    assert by_hand and planned == real > 0
    _cli_import(fresh_url, "workers", SAMPLE_DIR / SAMPLE_FILES["workers"])

    report = _job_import(fresh_url, "households", SAMPLE_DIR / SAMPLE_FILES["households"])
    assert report["created"] > 10_000
    for table in ("household", "household_cell", "household_subtree_cell", "search_place"):
        planned, real, by_hand = _stats(fresh_url, table)
        assert by_hand and planned == real > 0, table

    # One more household is not a tenth of the table: its statistics stay as they were.
    engine = create_engine(fresh_url)
    with engine.connect() as c:
        lon, lat = c.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
                "WHERE level = 4 AND valid_to IS NULL ORDER BY code LIMIT 1) s"
            )
        ).one()
    engine.dispose()
    one = tmp_path / "one.csv"
    one.write_text(
        f"lon,lat,building,unit,room,people\n{lon},{lat},9栋,1,101,2\n", encoding="utf-8"
    )
    before = _stats(fresh_url, "household")
    _cli_import(fresh_url, "households", one)
    planned, real, _ = _stats(fresh_url, "household")
    assert real == before[1] + 1 and planned == before[0]


def test_the_analyse_function_reaches_only_the_schemas_tables(fresh_url: str) -> None:
    engine = create_engine(fresh_url)  # the app's role
    try:
        with engine.begin() as c:
            assert not c.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
            names = ["pg_authid", "pg_class", "grid; DROP TABLE grid", "no_such_table", "grid"]
            assert c.scalar(text("SELECT gridgov_analyze(:t)"), {"t": names}) == 1
            assert c.scalar(text("SELECT count(*) FROM grid")) == 0
    finally:
        engine.dispose()

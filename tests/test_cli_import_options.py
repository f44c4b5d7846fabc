"""``gridgov import`` with value mappings, buildings, a dry run and a progress bar: the dry run
prints what would be created and refused and leaves the database as it was."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import create_engine, text

from app.cli import main


def _counts(database_url: str) -> tuple[int, int, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as c:
            return tuple(  # type: ignore[return-value]
                c.execute(
                    text(
                        "SELECT (SELECT count(*) FROM household), (SELECT count(*) FROM "
                        "service_point), (SELECT count(*) FROM import_held)"
                    )
                ).one()
            )
    finally:
        engine.dispose()


def _leaf_point(database_url: str) -> tuple[float, float, str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as c:
            return tuple(  # type: ignore[return-value]
                c.execute(
                    text(
                        "SELECT ST_X(p), ST_Y(p), code FROM (SELECT ST_PointOnSurface(geom) p, "
                        "code FROM grid WHERE level = 4 AND valid_to IS NULL ORDER BY code "
                        "LIMIT 1) s"
                    )
                ).one()
            )
    finally:
        engine.dispose()


def test_dry_run_of_buildings_prints_what_would_be_created_and_writes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    lon, lat, code = _leaf_point(database_url)
    path = tmp_path / "buildings.csv"
    path.write_text(
        f"lon,lat,building,households,物业\n{lon},{lat},3栋,14,华安\n{lon},{lat},4栋,6,\n"
        "10.0,10.0,荒地,2,\n",
        encoding="utf-8",
    )
    before = _counts(database_url)
    runner = CliRunner(env={"GRIDGOV_DATABASE_URL": database_url})
    result = runner.invoke(main, ["import", "households", str(path), "--dry-run"])
    assert result.exit_code == 1, result.output  # a refused row: the dry run says so
    assert "row 4" in result.output and "no leaf grid" in result.output
    assert "columns not used" in result.output and "物业" in result.output
    result = runner.invoke(
        main, ["import", "households", str(path), "--dry-run", "--outside", "hold"]
    )
    assert result.exit_code == 0, result.output
    assert "would be created: 20 households" in result.output
    assert f"in {code}: 20" in result.output
    assert "would be held aside: row 4" in result.output
    assert "nothing was written" in result.output
    assert _counts(database_url) == before


def test_value_mapping_from_the_command_line_and_a_mapping_file(
    database_url: str, tmp_path: Path
) -> None:
    lon, lat, _ = _leaf_point(database_url)
    path = tmp_path / "amenities.csv"
    path.write_text(
        f"lon,lat,name,amenity\n{lon},{lat},公厕,toilets\n{lon},{lat},公厕2,toilets\n"
        f"{lon},{lat},图书馆,library\n",
        encoding="utf-8",
    )
    before = _counts(database_url)
    runner = CliRunner(env={"GRIDGOV_DATABASE_URL": database_url})
    result = runner.invoke(
        main,
        ["import", "service_points", str(path), "--map", "kind=amenity", "--dry-run"],
    )
    assert result.exit_code == 1
    assert "toilets" in result.output and "2 rows" in result.output
    assert "library" in result.output and "1 rows" in result.output
    result = runner.invoke(
        main,
        [
            "import",
            "service_points",
            str(path),
            "--map",
            "kind=amenity",
            "--map-value",
            "kind=toilets:other,library:centre",
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "would be created: 3 service_points" in result.output
    assert "toilets (2)" in result.output
    mapping = tmp_path / "amenity.yaml"
    mapping.write_text(
        "columns:\n  kind: amenity\nvalues:\n  kind:\n    toilets: other\n    library: centre\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        main,
        ["import", "service_points", str(path), "--mapping-file", str(mapping), "--dry-run"],
    )
    assert result.exit_code == 0, result.output
    assert "would be created: 3 service_points" in result.output
    assert _counts(database_url) == before

"""The gridgov command: imports report bad records and exit non-zero; exports write files."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from app.cli import main


def test_import_with_bad_rows_fails_and_lists_them(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "hh.csv"
    path.write_text("lon,lat,people\n117.23,31.82,2\n10,10,2\nabc,31.8,1\n", encoding="utf-8")
    result = CliRunner(env={"GRIDGOV_DATABASE_URL": database_url}).invoke(
        main, ["import", "households", str(path)]
    )
    assert result.exit_code == 1
    assert "row 4" in result.output and "not a number" in result.output
    path.write_text("lon,lat,people\n117.23,31.82,2\n10,10,2\n", encoding="utf-8")
    result = CliRunner(env={"GRIDGOV_DATABASE_URL": database_url}).invoke(
        main, ["import", "households", str(path)]
    )
    assert result.exit_code == 1
    assert (
        "row 3" in result.output
        and "no leaf grid" in result.output
        and "nothing was loaded" in result.output
    )


def test_export_writes_a_geopackage(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "grids.gpkg"
    result = CliRunner(env={"GRIDGOV_DATABASE_URL": database_url}).invoke(
        main, ["export", "grids", str(out)]
    )
    assert result.exit_code == 0, result.output
    import geopandas as gpd

    frame = gpd.read_file(out)
    assert len(frame) == 242 and set(frame["level"]) == {1, 2, 3, 4, 5}


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    for cmd in ("db", "migrate", "load-sample", "import", "export", "serve"):
        assert cmd in result.output

"""The locate commands of the ``gridgov`` CLI, on the test database."""

from __future__ import annotations

import csv
import json

from click.testing import CliRunner

from app.cli import main
from gis.crs import from_wgs84


def test_locate_one_point(database_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["locate", "117.23", "31.82"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["method"] == "inside" and body["owner"]["role_name"] == "专职网格员"
    bad = CliRunner().invoke(main, ["locate", "31.82", "117.23"])
    assert bad.exit_code != 0 and "swapped" in bad.output


def test_locate_batch_file(database_url: str, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", database_url)
    bx, by = (float(v) for v in from_wgs84(117.23, 31.82, "bd09"))
    src = tmp_path / "hotline.csv"
    src.write_text(f"id,lon,lat\nA1,{bx},{by}\nA2,abc,31.8\nA3,100,40\n", encoding="utf-8")
    out = tmp_path / "routed.csv"
    result = CliRunner().invoke(main, ["locate-batch", str(src), "-o", str(out), "--crs", "bd09"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["A1", "A2", "A3"]
    single = json.loads(CliRunner().invoke(main, ["locate", "117.23", "31.82"]).output)
    assert rows[0]["grid_code"] == single["grid"]["code"] and rows[0]["method"] == "inside"
    assert rows[1]["method"] == "invalid" and "not a number" in rows[1]["error"]
    assert rows[2]["method"] == "unassigned" and rows[2]["owner_name"] == "指挥中心"
    assert "located 3 points" in result.output

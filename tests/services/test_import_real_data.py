"""Real data as it comes: buildings with household counts, value mappings, points outside
every leaf grid, columns no field takes, and the dry run (service level)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from app.errors import BadParameter, ImportRejected
from app.services import grid_tree
from app.services.importer import options as opts


def _count(session, table: str) -> int:  # type: ignore[no-untyped-def]
    return int(session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar())


def _leaf(session, skip: int = 0) -> tuple[int, float, float, str]:  # type: ignore[no-untyped-def]
    return tuple(  # type: ignore[return-value]
        session.execute(
            text(
                f"""SELECT id, ST_X(p), ST_Y(p), code FROM (
                     SELECT g.id, ST_PointOnSurface(g.geom) AS p, g.code FROM grid g
                     WHERE g.valid_to IS NULL AND g.level = 4 AND {grid_tree.is_leaf("g")}
                     ORDER BY g.code OFFSET :skip LIMIT 1) s"""
            ),
            {"skip": skip},
        ).one()
    )


def test_a_building_with_a_count_imports_as_that_many_households(
    db_session, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    gid, lon, lat, code = _leaf(db_session)
    path = tmp_path / "buildings.csv"
    path.write_text(
        "lon,lat,building,address,households,units,floors,people,物业\n"
        f"{lon},{lat},3栋,安和路3号,14,2,7,30,华安物业\n"
        f"{lon},{lat},5栋,安和路5号,,1,3,,\n"  # units × floors = 3 households
        f"{lon},{lat},平房,安和路9号,,,,4,\n",  # one household of 4
        encoding="utf-8",
    )
    before = _count(db_session, "household")
    report = opts.run_import(db_session, "households", path)
    assert report["created"] == 14 + 3 + 1 and report["buildings"] == 2
    assert report["unused_columns"] == ["物业"]
    assert report["by_grid"] == {code: 18}
    assert _count(db_session, "household") == before + 18
    rows = db_session.execute(
        text(
            "SELECT unit, room, people FROM household WHERE building = '3栋' AND grid_id = :g "
            "ORDER BY unit, room"
        ),
        {"g": gid},
    ).all()
    assert len(rows) == 14
    assert [r[0] for r in rows] == ["1"] * 7 + ["2"] * 7
    assert [r[1] for r in rows[:7]] == ["101", "201", "301", "401", "501", "601", "701"]
    assert sum(r[2] for r in rows) == 30  # the building's people, spread over its households
    assert (
        db_session.execute(text("SELECT count(*) FROM household WHERE building = '5栋'")).scalar()
        == 3
    )


def test_a_building_row_cannot_carry_one_households_head(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, lon, lat, _ = _leaf(db_session)
    path = tmp_path / "b.csv"
    path.write_text(
        f"lon,lat,households,head_name\n{lon},{lat},4,张三\n{lon},{lat},zero,\n", encoding="utf-8"
    )
    with pytest.raises(ImportRejected) as err:
        opts.run_import(db_session, "households", path)
    fields = {p["field"] for p in err.value.problems}
    assert fields == {"head_name", "households"}


def test_value_mapping_and_the_refusal_listing_unmapped_values(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, lon, lat, _ = _leaf(db_session)
    path = tmp_path / "amenities.csv"
    lines = ["lon,lat,name,amenity"]
    lines += [f"{lon},{lat},公厕{i},toilets" for i in range(3)]
    lines += [
        f"{lon},{lat},图书馆,library",
        f"{lon},{lat},诊所,clinic",
        f"{lon},{lat},诊所2,clinic",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    values = opts.parse_value_map(["kind=toilets:other"])
    with pytest.raises(ImportRejected) as err:
        opts.run_import(
            db_session,
            "service_points",
            path,
            mapping={"kind": "amenity"},
            options=opts.ImportOptions(values=values),
        )
    unmapped = {p["value"]: p["count"] for p in err.value.problems}
    assert unmapped == {"library": 1, "clinic": 2}
    before = _count(db_session, "service_point")
    values = opts.parse_value_map(["kind=toilets:other,library:centre", "kind=clinic:station"])
    report = opts.run_import(
        db_session,
        "service_points",
        path,
        mapping={"kind": "amenity"},
        options=opts.ImportOptions(values=values),
    )
    assert report["created"] == 6
    assert report["values_mapped"] == {"kind": {"toilets": 3, "library": 1, "clinic": 2}}
    kinds = dict(
        db_session.execute(
            text("SELECT kind, count(*) FROM service_point WHERE id > 0 GROUP BY kind")
        ).all()
    )
    assert _count(db_session, "service_point") == before + 6 and kinds["other"] >= 3


def test_mapping_files_in_json_and_yaml(tmp_path: Path) -> None:
    cols, values = opts.read_mapping_file(
        b'{"columns": {"kind": "amenity"}, "values": {"kind": {"toilets": "other"}}}', "m.json"
    )
    assert cols == {"kind": "amenity"} and values == {"kind": {"toilets": "other"}}
    cols, values = opts.read_mapping_file(b"kind:\n  library: centre\n", "m.yaml")
    assert cols == {} and values == {"kind": {"library": "centre"}}
    with pytest.raises(BadParameter):
        opts.read_mapping_file(b"[1, 2]", "m.json")
    with pytest.raises(BadParameter):
        opts.parse_value_map(["kind=toilets"])


def test_points_outside_every_leaf_grid_kept_low_or_held(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gid, lon, lat, code = _leaf(db_session, skip=3)
    parent_id, parent_code = db_session.execute(
        text("SELECT p.id, p.code FROM grid g JOIN grid p ON p.id = g.parent_id WHERE g.id = :g"),
        {"g": gid},
    ).one()
    # The leaf is retired: its ground is covered by its parent alone (data being cleaned).
    db_session.execute(text("UPDATE grid SET valid_to = now() WHERE id = :g"), {"g": gid})
    path = tmp_path / "hh.csv"
    path.write_text(f"lon,lat,address\n{lon},{lat},甲\n10.0,10.0,乙\n", encoding="utf-8")
    with pytest.raises(ImportRejected):
        opts.run_import(db_session, "households", path)
    with pytest.raises(ImportRejected) as err:  # lowest: the point in no grid at all is refused
        opts.run_import(
            db_session, "households", path, options=opts.ImportOptions(outside="lowest")
        )
    assert [p["where"] for p in err.value.problems] == ["row 3"]
    path.write_text(f"lon,lat,address\n{lon},{lat},甲\n", encoding="utf-8")
    report = opts.run_import(
        db_session, "households", path, options=opts.ImportOptions(outside="lowest")
    )
    assert report["placed"] == [{"where": "row 2", "grid_id": parent_id, "grid_code": parent_code}]
    assert (
        db_session.execute(text("SELECT grid_id FROM household WHERE address = '甲'")).scalar()
        == parent_id
    )
    path.write_text(f"lon,lat,address\n{lon},{lat},丙\n10.0,10.0,丁\n", encoding="utf-8")
    held_before = _count(db_session, "import_held")
    report = opts.run_import(
        db_session, "households", path, options=opts.ImportOptions(outside="hold")
    )
    assert report["created"] == 0 and [h["where"] for h in report["held"]] == ["row 2", "row 3"]
    assert parent_code in report["held"][0]["reason"]
    assert _count(db_session, "import_held") == held_before + 2
    record = db_session.execute(
        text("SELECT record FROM import_held WHERE row_ref = 'row 3' ORDER BY id DESC LIMIT 1")
    ).scalar()
    assert record["address"] == "丁"


def test_a_dry_run_reports_refusals_instead_of_raising(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hh.csv"
    path.write_text("lon,lat\n10.0,10.0\n", encoding="utf-8")
    report = opts.run_import(
        db_session, "households", path, options=opts.ImportOptions(dry_run=True)
    )
    assert report["created"] == 0 and report["refused"][0]["where"] == "row 2"
    with pytest.raises(BadParameter):
        opts.ImportOptions(outside="somewhere")

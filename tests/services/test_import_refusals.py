"""Departments, workers, assignments and service points: a file with bad rows is refused whole,
each bad row named with what is wrong, and nothing of it is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from app.errors import ImportRejected
from app.services import importer


def _count(session, table: str) -> int:  # type: ignore[no-untyped-def]
    return session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()


def _refused(session, kind: str, path: Path, table: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    before = _count(session, table)
    with pytest.raises(ImportRejected) as err:
        importer.import_file(session, kind, path)
    assert err.value.http_status == 422
    assert _count(session, table) == before  # nothing of the file
    return {p["where"]: p["reason"] for p in err.value.problems}


def test_departments_need_a_code_and_name_and_codes_are_unique(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "departments.csv"
    path.write_text(
        "code,name,phone,duties\n"
        "ZJ-NEW,新建住建所,0551-1,住建\n"  # row 2: good
        ",无编码,0551-2,\n"  # row 3: no code
        "ZJ-NEW,重复编码,0551-3,\n"  # row 4: same code as row 2
        "PCS-AH,已有编码,0551-4,\n",  # row 5: a code already loaded
        encoding="utf-8",
    )
    where = _refused(db_session, "departments", path, "department")
    assert set(where) == {"row 3", "row 4", "row 5"}
    assert "required" in where["row 3"]
    assert (
        "duplicate code 'ZJ-NEW'" in where["row 4"] and "duplicate code 'PCS-AH'" in where["row 5"]
    )


def test_workers_need_a_name_a_unique_code_and_a_phone_number(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "workers.csv"
    path.write_text(
        "code,name,phone,on_duty\n"
        "W90001,新网格员,13900009999,true\n"  # row 2: good
        "W90002,,13900009998,true\n"  # row 3: no name
        "W00001,重号,13900009997,true\n"  # row 4: a code already loaded
        "W90003,号码错,1390000999,true\n",  # row 5: ten digits: not a phone number
        encoding="utf-8",
    )
    where = _refused(db_session, "workers", path, "worker")
    assert set(where) == {"row 3", "row 4", "row 5"}
    assert "name is required" in where["row 3"]
    assert "duplicate code 'W00001'" in where["row 4"]
    assert "'1390000999' is not a phone number" in where["row 5"]


def test_assignments_name_an_existing_worker_grid_and_role(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "assignments.csv"
    path.write_text(
        "worker_code,grid_code,role\n"
        "W00001,3401880010010101,worker_full\n"  # row 2: good
        "W99999,3401880010010101,worker_full\n"  # row 3: no such worker
        "W00001,999999,worker_full\n"  # row 4: no such grid
        "W00001,3401880010010101,boss\n",  # row 5: no such role
        encoding="utf-8",
    )
    where = _refused(db_session, "assignments", path, "grid_assignment")
    assert set(where) == {"row 3", "row 4", "row 5"}
    assert "worker 'W99999' not found" in where["row 3"]
    assert "grid '999999' not found" in where["row 4"]
    assert "role 'boss' is not one of" in where["row 5"]


def test_service_points_need_a_known_kind_and_a_sane_radius(db_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lon, lat = db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
            "WHERE code = '3401880010010101') s"
        )
    ).one()

    def point(name: str, kind: str, radius: float) -> dict:
        return {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"name": name, "kind": kind, "radius_m": radius},
        }

    path = tmp_path / "service_points.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    point("好阵地", "station", 1000),  # feature 1: good
                    point("怪阵地", "castle", 1000),  # feature 2: unknown kind
                    point("远阵地", "station", 90000),  # feature 3: radius out of range
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    where = _refused(db_session, "service_points", path, "service_point")
    assert len(where) == 2, where
    reasons = " | ".join(where.values())
    assert "kind 'castle' is not one of" in reasons and "radius '90000" in reasons

"""Imports over HTTP take buildings with counts, value mappings (fields or a mapping file),
points outside the leaf grids and a dry run; an import job reports its progress and result
to its creator alone."""

from __future__ import annotations

import io

from sqlalchemy import text

from app.services import grid_tree
from tests.auth.conftest import bearer


def _leaf(session) -> tuple[float, float, str]:  # type: ignore[no-untyped-def]
    return tuple(  # type: ignore[return-value]
        session.execute(
            text(
                f"""SELECT ST_X(p), ST_Y(p), code FROM (
                     SELECT ST_PointOnSurface(g.geom) AS p, g.code FROM grid g
                     WHERE g.valid_to IS NULL AND g.level = 4 AND {grid_tree.is_leaf("g")}
                     ORDER BY g.code LIMIT 1) s"""
            )
        ).one()
    )


def _counts(session) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(
        session.execute(
            text(
                "SELECT (SELECT count(*) FROM household), (SELECT count(*) FROM service_point), "
                "(SELECT count(*) FROM import_held), (SELECT sum(household_count) FROM grid)"
            )
        ).one()
    )


def _upload(body: str, name: str = "hh.csv", **fields):  # type: ignore[no-untyped-def]
    return {"file": (io.BytesIO(body.encode()), name), **fields}


def test_buildings_with_counts_import_as_that_many_households(client, db_session) -> None:  # type: ignore[no-untyped-def]
    lon, lat, code = _leaf(db_session)
    before = _counts(db_session)
    body = f"lon,lat,building,households,units,floors,楼长\n{lon},{lat},7栋,14,2,7,王\n"
    res = client.post("/api/import/households", data=_upload(body))
    assert res.status_code == 201, res.get_json()
    answer = res.get_json()
    assert answer["imported"] == 14 and answer["report"]["by_grid"] == {code: 14}
    assert answer["report"]["unused_columns"] == ["楼长"]
    after = _counts(db_session)
    assert after[0] == before[0] + 14
    rooms = (
        db_session.execute(
            text("SELECT unit || '-' || room FROM household WHERE building = '7栋' ORDER BY 1")
        )
        .scalars()
        .all()
    )
    assert rooms[:2] == ["1-101", "1-201"] and rooms[-1] == "2-701" and len(set(rooms)) == 14


def test_dry_run_reports_and_leaves_the_database_unchanged(client, db_session) -> None:  # type: ignore[no-untyped-def]
    lon, lat, code = _leaf(db_session)
    before = _counts(db_session)
    body = f"lon,lat,building,households\n{lon},{lat},8栋,9\n10.0,10.0,荒,3\n"
    res = client.post("/api/import/households", data=_upload(body, dry_run="true"))
    assert res.status_code == 200
    report = res.get_json()["report"]
    assert report["dry_run"] and report["created"] == 0
    assert [p["where"] for p in report["refused"]] == ["row 3"]
    res = client.post("/api/import/households", data=_upload(body, dry_run="1", outside="hold"))
    report = res.get_json()["report"]
    assert res.status_code == 200 and report["created"] == 9 and report["by_grid"] == {code: 9}
    assert [h["where"] for h in report["held"]] == ["row 3"]
    assert _counts(db_session) == before
    res = client.post("/api/import/households", data=_upload(body, outside="elsewhere"))
    assert res.status_code == 400 and res.get_json()["error"]["param"] == "outside"


def test_value_mapping_by_field_and_by_file(client, db_session) -> None:  # type: ignore[no-untyped-def]
    lon, lat, _ = _leaf(db_session)
    body = (
        f"lon,lat,name,amenity\n{lon},{lat},公厕,toilets\n{lon},{lat},公厕2,toilets\n"
        f"{lon},{lat},图书馆,library\n"
    )
    before = _counts(db_session)
    res = client.post("/api/import/service_points", data=_upload(body, "a.csv", map="kind=amenity"))
    assert res.status_code == 422
    problems = res.get_json()["error"]["problems"]
    assert {p["value"]: p["count"] for p in problems} == {"toilets": 2, "library": 1}
    res = client.post(
        "/api/import/service_points",
        data=_upload(
            body, "a.csv", map="kind=amenity", map_value="kind=toilets:other,library:centre"
        ),
    )
    assert res.status_code == 201, res.get_json()
    assert res.get_json()["report"]["values_mapped"] == {"kind": {"toilets": 2, "library": 1}}
    mapping = b'{"columns": {"kind": "amenity"}, "values": {"kind": {"toilets": "other", "library": "point"}}}'
    res = client.post(
        "/api/import/service_points",
        data={
            **_upload(body, "a.csv", dry_run="yes"),
            "mapping": (io.BytesIO(mapping), "m.json"),
        },
    )
    assert res.status_code == 200 and res.get_json()["report"]["created"] == 3
    assert _counts(db_session)[1] == before[1] + 3


def test_an_import_job_reports_progress_and_result_to_its_creator(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    lon, lat, code = _leaf(db_session)
    body = f"lon,lat,building,households\n{lon},{lat},9栋,5\n"
    before = _counts(db_session)
    res = client.post("/api/import-jobs/households", data=_upload(body))
    assert res.status_code == 202, res.get_json()
    job = res.get_json()
    status = client.get(f"/api/import-jobs/{job['id']}").get_json()
    assert status["status"] == "done" and status["report"]["created"] == 5
    assert status["done"] == status["total"] and status["percent"] == 100.0
    assert _counts(db_session)[0] == before[0] + 5
    other = app.test_client().get(
        f"/api/import-jobs/{job['id']}", headers=bearer(accounts["centre"])
    )
    assert other.status_code == 404
    res = client.post("/api/import-jobs/households", data=_upload("lon,lat\n10,10\n"))
    failed = client.get(f"/api/import-jobs/{res.get_json()['id']}").get_json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "import_rejected"
    assert failed["error"]["problems"][0]["where"] == "row 2"


def test_held_records_are_listed_for_their_importer(app, client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    res = client.post(
        "/api/import/households", data=_upload("lon,lat,address\n10,10,荒地一号\n", outside="hold")
    )
    assert res.status_code == 201 and res.get_json()["imported"] == 0
    held = client.get("/api/import/held?kind=households").get_json()["held"]
    assert held[0]["record"]["address"] == "荒地一号" and held[0]["row_ref"] == "row 2"
    mine = app.test_client().get("/api/import/held", headers=bearer(accounts["centre"]))
    assert mine.status_code == 200
    assert all(h["record"].get("address") != "荒地一号" for h in mine.get_json()["held"])

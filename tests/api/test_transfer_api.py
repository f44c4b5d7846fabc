"""Import and export over HTTP."""

from __future__ import annotations

import io
import json

from sqlalchemy import text


def test_upload_with_a_bad_row_is_refused_whole(client, db_session) -> None:  # type: ignore[no-untyped-def]
    before = db_session.execute(text("SELECT count(*) FROM camera")).scalar()
    body = "code,lon,lat\nCAM-NEW-1,117.2301,31.8201\nCAM-NEW-2,31.82,117.23\n"
    res = client.post(
        "/api/import/cameras",
        data={"file": (io.BytesIO(body.encode()), "cams.csv")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 422
    err = res.get_json()["error"]
    assert err["code"] == "import_rejected"
    assert err["problems"][0]["where"] == "row 3" and "swapped" in err["problems"][0]["reason"]
    assert db_session.execute(text("SELECT count(*) FROM camera")).scalar() == before


def test_upload_in_bd09_with_mapping(client, db_session) -> None:  # type: ignore[no-untyped-def]
    from gis.crs import from_wgs84

    lon, lat, code = db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p), code FROM (SELECT ST_PointOnSurface(geom) p, code FROM grid WHERE level = 4 ORDER BY code LIMIT 1) s"
        )
    ).one()
    bx, by = from_wgs84(lon, lat, "bd09")
    body = f"编号,经度,纬度\nCAM-BD-1,{float(bx)},{float(by)}\n"
    res = client.post(
        "/api/import/cameras",
        data={
            "file": (io.BytesIO(body.encode()), "cams.csv"),
            "crs": "bd09",
            "map": ["code=编号", "lon=经度", "lat=纬度"],
        },
        content_type="multipart/form-data",
    )
    assert res.status_code == 201, res.get_json()
    got = db_session.execute(
        text(
            "SELECT g.code FROM camera c JOIN grid g ON g.id = c.grid_id WHERE c.code = 'CAM-BD-1'"
        )
    ).scalar()
    assert got == code


def test_upload_errors_name_the_problem(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/api/import/cameras").get_json()["error"]["param"] == "file"
    res = client.post(
        "/api/import/people",
        data={"file": (io.BytesIO(b"x"), "x.csv")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 400 and res.get_json()["error"]["param"] == "kind"
    res = client.post(
        "/api/import/cameras",
        data={"file": (io.BytesIO(b"x"), "x.xls")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 400 and "x.xls" in res.get_json()["error"]["message"]
    res = client.post(
        "/api/import/cameras",
        data={"file": (io.BytesIO(b"code,lon\nA,1\n"), "x.csv")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 400 and "lat" in res.get_json()["error"]["message"]


def test_export_download(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/api/export/service_points?format=geojson")
    assert res.status_code == 200
    data = json.loads(res.data)
    assert len(data["features"]) == 20
    csv_res = client.get("/api/export/households?format=csv")
    assert csv_res.status_code == 200 and b"****" in csv_res.data
    assert client.get("/api/export/households?format=xls").status_code == 400

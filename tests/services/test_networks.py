"""Departments' own grids (多网合一): two networks built from the sample's grids — one nesting
exactly, one shifted by a known offset — imported, and their mismatch figures held to an
independent shapely + pyproj computation; an alignment committed makes its grid nest; a
category routed by a network goes to the department's person; the printed notice board."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import shapely
from pyproj import Geod, Transformer
from sqlalchemy import text

from app.models import Worker

COMMUNITY = "340188001001"  # 爱辉社区: its 网格 are the departmental grids' models
SHIFT_DEG = 0.0004  # about 38 m east
GEOD = Geod(ellps="WGS84")


def geod_area(geom: Any) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0]) if not geom.is_empty else 0.0


def unified(db_session, level: int = 3) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    rows = db_session.execute(
        text("SELECT code, ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL AND level = :l"),
        {"l": level},
    ).all()
    return {code: shapely.from_wkb(bytes(w)) for code, w in rows}


def community_grids(db_session) -> list[tuple[str, str, Any]]:  # type: ignore[no-untyped-def]
    rows = db_session.execute(
        text(
            """SELECT g.code, g.name, ST_AsBinary(g.geom) FROM grid g JOIN grid p ON p.id = g.parent_id
               WHERE p.code = :c AND g.valid_to IS NULL ORDER BY g.code"""
        ),
        {"c": COMMUNITY},
    ).all()
    return [(c, n, shapely.from_wkb(bytes(w))) for c, n, w in rows]


def households(db_session) -> list[Any]:  # type: ignore[no-untyped-def]
    rows = db_session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM household")).all()
    return shapely.points([r[0] for r in rows], [r[1] for r in rows])


def write_geojson(path: Path, grids: list[tuple[str, str, Any]], **props: Any) -> Path:
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": shapely.geometry.mapping(g),
                        "properties": {
                            "code": f"PCS-{i + 1:02d}",
                            "name": f"警务网格{i + 1}",
                            "person": f"民警{i + 1}",
                            "phone": "13800001111",
                            **props,
                        },
                    }
                    for i, (_, _, g) in enumerate(grids)
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return path


def post_network(client, path: Path, **form: str):  # type: ignore[no-untyped-def]
    with path.open("rb") as f:
        return client.post(
            "/api/networks/import",
            data={"file": (io.BytesIO(f.read()), path.name), **form},
            content_type="multipart/form-data",
        )


def expected_report(
    grids: list[Any], uni: dict[str, Any], points: Any, sliver_m2: float = 50, pct: float = 1
) -> list[dict[str, Any]]:
    """Per departmental grid: {unified code: (area m², households)} and whether it nests."""
    out = []
    for g in grids:
        crossings = {}
        for code, u in uni.items():
            if not g.intersects(u):
                continue
            a = geod_area(g.intersection(u))
            if a < 0.01:
                continue
            n = int(sum(1 for p in points if g.intersects(p) and u.intersects(p)))
            crossings[code] = (a, n)
        whole = geod_area(g)
        real = [
            c for c, (a, _) in crossings.items() if not (a < sliver_m2 or a < whole * pct / 100)
        ]
        outside = max(0.0, whole - sum(a for a, _ in crossings.values()))
        nests = len(real) == 1 and (outside < sliver_m2 or outside < whole * pct / 100)
        out.append({"crossings": crossings, "nests": nests, "real": sorted(real)})
    return out


@pytest.fixture()
def shifted_csv(tmp_path, db_session):  # type: ignore[no-untyped-def]
    """The community's 网格 shifted east, as a CSV of WKT in CGCS2000 Gauss-Krüger (EPSG:4548)."""
    grids = [
        shapely.affinity.translate(g, xoff=SHIFT_DEG) for _, _, g in community_grids(db_session)
    ]
    to_gk = Transformer.from_crs(4326, 4548, always_xy=True)
    path = tmp_path / "cg.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["编号", "名称", "责任人", "wkt"])
        for i, g in enumerate(grids):
            projected = shapely.transform(
                g, lambda xy: __import__("numpy").column_stack(to_gk.transform(xy[:, 0], xy[:, 1]))
            )
            w.writerow([f"CG-{i + 1:02d}", f"城管网格{i + 1}", f"队员{i + 1}", projected.wkt])
    return path, grids


def test_nesting_and_shifted_networks_match_an_independent_computation(
    client, db_session, tmp_path, shifted_csv
) -> None:  # type: ignore[no-untyped-def]
    models = community_grids(db_session)
    assert len(models) >= 3
    nest = post_network(
        client,
        write_geojson(tmp_path / "pcs.geojson", models),
        department="PCS-AH",
        name="警务网格",
        kind="police",
    )
    assert nest.status_code == 201, nest.get_json()
    path, shifted = shifted_csv
    moved = post_network(
        client,
        path,
        department="安和城管中队",
        name="城管网格",
        kind="urban",
        crs="EPSG:4548",
        map=["code=编号", "name=名称", "person=责任人"],
    )
    assert moved.status_code == 201, moved.get_json()
    assert moved.get_json()["imported"] == len(models)

    uni = unified(db_session)
    points = households(db_session)
    report = client.get(f"/api/networks/{nest.get_json()['id']}/mismatch").get_json()
    assert report["summary"] == {
        **report["summary"],
        "grids": len(models),
        "clean": len(models),
        "clean_share": 1.0,
    }
    for g, (code, _, _) in zip(report["grids"], models, strict=True):
        assert g["nests"] and [c["grid"]["code"] for c in g["crossings"] if not c["sliver"]] == [
            code
        ]

    report = client.get(f"/api/networks/{moved.get_json()['id']}/mismatch").get_json()
    want = expected_report(shifted, uni, points)
    assert len(report["grids"]) == len(want)
    for got, exp in zip(report["grids"], want, strict=True):
        crossings = {c["grid"]["code"]: c for c in got["crossings"]}
        assert set(crossings) == set(exp["crossings"]), got["code"]
        for code, (area, n) in exp["crossings"].items():
            assert crossings[code]["area_m2"] == pytest.approx(area, rel=1e-4, abs=0.5), (
                got["code"],
                code,
            )
            assert crossings[code]["households"] == n, (got["code"], code)
        assert got["nests"] == exp["nests"]
    # Shifted by ~38 m, some departmental grids reach into a neighbour: those split it.
    assert report["summary"]["clean"] == sum(e["nests"] for e in want) < len(want)
    split = {u["grid"]["code"] for u in report["unified"] if u["split"]}
    assert split == {code for code in uni if sum(code in e["real"] for e in want) > 1}

    listing = client.get("/api/networks").get_json()
    depts = {d["department"]["code"]: d for d in listing["departments"]}
    assert depts["PCS-AH"]["clean_share"] == 1.0
    assert depts["CG-AH"]["clean"] == report["summary"]["clean"]

    export = client.get(f"/api/networks/{moved.get_json()['id']}/mismatch?format=csv")
    assert export.status_code == 200
    body = export.get_data(as_text=True)
    assert "统一网格编码" in body and "城管网格1" in body


def test_import_refuses_bad_rows_in_chinese_and_keeps_nothing(client, db_session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    models = community_grids(db_session)
    a, b = models[0][2], models[1][2]
    overlapping = [models[0], (models[1][0], models[1][1], a.union(b))]
    res = post_network(
        client,
        write_geojson(tmp_path / "bad.geojson", overlapping),
        department="PCS-AH",
        name="坏图层",
    )
    assert res.status_code == 422
    problems = res.get_json()["error"]["problems"]
    assert any("重叠" in p["reason"] for p in problems)
    assert db_session.scalar(text("SELECT count(*) FROM network WHERE name = '坏图层'")) == 0
    res = post_network(
        client, write_geojson(tmp_path / "x.geojson", models), department="不存在的部门", name="x"
    )
    assert res.status_code == 400 and "职能部门" in res.get_json()["error"]["message"]


def test_committed_alignment_makes_the_grid_nest_and_keeps_its_history(
    client, db_session, tmp_path, shifted_csv
) -> None:  # type: ignore[no-untyped-def]
    path, _ = shifted_csv
    net = post_network(
        client,
        path,
        department="CG-AH",
        name="城管网格",
        crs="EPSG:4548",
        map=["code=编号", "name=名称", "person=责任人"],
    ).get_json()
    report = client.get(f"/api/networks/{net['id']}/mismatch").get_json()
    grid = next(g for g in report["grids"] if not g["nests"])
    proposal = client.get(
        f"/api/networks/{net['id']}/grids/{grid['id']}/alignment?tolerance_m=100"
    ).get_json()
    assert proposal["within_tolerance"] and 0 < proposal["max_shift_m"] <= 100
    assert proposal["moves"]["added_m2"] > 0 and proposal["moves"]["removed_m2"] > 0
    assert proposal["before"]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    tight = client.post(
        f"/api/networks/{net['id']}/grids/{grid['id']}/alignment",
        json={"version": 1, "tolerance_m": 5},
    )
    assert tight.status_code == 422
    done = client.post(
        f"/api/networks/{net['id']}/grids/{grid['id']}/alignment",
        json={"version": 1, "tolerance_m": 100},
    )
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["committed"]["version"] == 2
    stale = client.post(
        f"/api/networks/{net['id']}/grids/{grid['id']}/alignment", json={"version": 1}
    )
    assert stale.status_code == 404  # the row seen is history now
    after = client.get(f"/api/networks/{net['id']}/mismatch").get_json()
    again = next(g for g in after["grids"] if g["code"] == grid["code"])
    assert again["nests"], again
    # Independently: the new boundary lies within one unified grid (up to noise).
    new = shapely.from_wkb(
        bytes(
            db_session.scalar(
                text("SELECT ST_AsBinary(geom) FROM network_grid WHERE id = :i"),
                {"i": done.get_json()["committed"]["id"]},
            )
        )
    )
    inside = [c for c, u in unified(db_session).items() if geod_area(new.intersection(u)) >= 50]
    assert len(inside) == 1
    versions = db_session.execute(
        text(
            "SELECT version, valid_to IS NULL FROM network_grid WHERE network_id = :n AND code = :c ORDER BY version"
        ),
        {"n": net["id"], "c": grid["code"]},
    ).all()
    assert [tuple(v) for v in versions] == [(1, False), (2, True)]


def test_a_category_routed_by_network_goes_to_the_departments_person(
    client, db_session, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    dept = db_session.scalar(text("SELECT id FROM department WHERE code = 'SJ-AH'"))
    officer = Worker(code="SJ-P-01", name="孙监管", phone="13900009999", department_id=dept)
    db_session.add(officer)
    db_session.flush()
    models = community_grids(db_session)
    path = write_geojson(tmp_path / "sj.geojson", models[:1], worker_code="SJ-P-01")
    net = post_network(client, path, department="SJ-AH", name="市场监管网格", kind="market")
    assert net.status_code == 201, net.get_json()
    lon, lat = db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(ST_GeomFromWKB(:w, 4326)) p) s"
        ),
        {"w": shapely.to_wkb(models[0][2])},
    ).one()
    before = client.get(f"/api/locate?lon={lon}&lat={lat}&category=streetlight").get_json()
    assert before["network"] is None and before["owner"]["worker_id"] != officer.id
    res = client.put(
        "/api/case-categories/streetlight/network", json={"network_id": net.get_json()["id"]}
    )
    assert res.status_code == 200, res.get_json()
    located = client.get(f"/api/locate?lon={lon}&lat={lat}&category=streetlight").get_json()
    assert located["network"]["department"]["name"] == "安和市场监管所"
    assert located["owner"]["worker_id"] == officer.id
    assert located["fallback"][0] == before["owner"]  # the micro-grid's owner backs it up
    case = client.post(
        "/api/cases",
        json={"x": lon, "y": lat, "category": "streetlight", "description": "路灯不亮"},
    )
    assert case.status_code == 201, case.get_json()
    assert (
        db_session.scalar(
            text('SELECT assignee_id FROM "case" WHERE id = :i'),
            {"i": case.get_json()["case"]["id"]},
        )
        == officer.id
    )
    # Outside every departmental grid the unified owner keeps it.
    far = db_session.execute(
        text(
            "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grid WHERE code = :c"
        ),
        {"c": "34018810120101"},
    ).one()
    elsewhere = client.get(f"/api/locate?lon={far[0]}&lat={far[1]}&category=streetlight").get_json()
    assert elsewhere["network"] is None
    # The batch locate (API and the CLI's CSV) routes by the network as the single one does.
    body = f"id,lon,lat\nin,{lon},{lat}\nfar,{far[0]},{far[1]}\n"
    res = client.post(
        "/api/locate/batch?format=csv&category=streetlight",
        data=body,
        content_type="text/csv",
    )
    assert res.status_code == 200, res.get_json()
    inside, outside = res.get_json()["results"]
    assert inside["network"] == located["network"] and inside["owner"] == located["owner"]
    assert inside["next"] == before["owner"]
    assert outside["network"] is None and outside["owner"]["worker_id"] != officer.id
    plain = client.post("/api/locate/batch?format=csv", data=body, content_type="text/csv")
    assert plain.get_json()["results"][0]["network"] is None
    csv = client.post(
        "/api/locate/batch?format=csv&category=streetlight&output=csv",
        data=body,
        content_type="text/csv",
    ).get_data(as_text=True)
    rows = {r.split(",")[0]: r for r in csv.strip().splitlines()[1:]}
    assert "孙监管" in rows["in"] and "13900009999" in rows["in"]
    assert "孙监管" not in rows["far"]
    assert csv.splitlines()[0].endswith("network_grid_code")


@pytest.mark.browser
def test_notice_board_pdf_shows_the_grid_and_its_people(client, db_session) -> None:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    gid, name = db_session.execute(
        text("SELECT id, name FROM grid WHERE code = '34018800100101' AND valid_to IS NULL")
    ).one()
    people = db_session.scalars(
        text(
            """SELECT w.name || '|' || coalesce(w.phone, '') FROM grid_assignment a JOIN worker w ON w.id = a.worker_id
               JOIN grid g ON g.id = a.grid_id WHERE (g.id = :g OR g.parent_id = :g)
               AND w.on_duty AND a.role <> 'party_member'"""
        ),
        {"g": gid},
    ).all()
    assert people
    res = client.get(f"/grids/{gid}/notice.pdf?paper=A4")
    assert res.status_code == 200 and res.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(res.data))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (
        round(float(box.width) / 72 * 25.4) == 210 and round(float(box.height) / 72 * 25.4) == 297
    )
    words = "".join(reader.pages[0].extract_text().split())
    assert name in words and "网格公示牌" in words
    for person in people:
        name_, phone = person.split("|")
        assert name_ in words, name_
        if phone:  # phones masked unless the grid chooses to show them
            assert phone not in words and f"{phone[:3]}****{phone[-4:]}" in words
    a3 = client.get(f"/grids/{gid}/notice.pdf?paper=A3")
    assert round(float(PdfReader(io.BytesIO(a3.data)).pages[0].mediabox.width) / 72 * 25.4) == 297
    png = client.get(f"/grids/{gid}/notice.png")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    community = db_session.scalar(text("SELECT id FROM grid WHERE code = :c"), {"c": COMMUNITY})
    whole = client.get(f"/grids/{community}/notice.pdf")
    assert len(PdfReader(io.BytesIO(whole.data)).pages) == len(community_grids(db_session))
    assert client.get(f"/grids/{gid}/notice.pdf?paper=B5").status_code == 400
    # The grid chooses to show phones in full.
    assert (
        client.put(f"/api/grids/{gid}/notice-settings", json={"show_phones": True}).status_code
        == 200
    )
    shown = "".join(
        PdfReader(io.BytesIO(client.get(f"/grids/{gid}/notice.pdf").data))
        .pages[0]
        .extract_text()
        .split()
    )
    phones = [p.split("|")[1] for p in people if p.split("|")[1]]
    assert phones and all(phone in shown for phone in phones)


def test_reimport_is_the_next_version_and_a_gpkg_in_another_crs_reads(
    client, db_session, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import geopandas as gpd

    models = community_grids(db_session)
    frame = gpd.GeoDataFrame(
        {"code": [f"HB-{i}" for i in range(len(models))], "name": [n for _, n, _ in models]},
        geometry=[g for _, _, g in models],
        crs=4326,
    ).to_crs(4548)
    path = tmp_path / "hb.gpkg"
    frame.to_file(path, driver="GPKG")
    first = post_network(client, path, department="HB-AH", name="环保网格", kind="environment")
    assert first.status_code == 201, first.get_json()
    second = post_network(client, path, department="HB-AH", name="环保网格", kind="environment")
    assert second.status_code == 201 and second.get_json()["version"] == 2
    assert second.get_json()["id"] == first.get_json()["id"]
    counts = db_session.execute(
        text(
            "SELECT count(*) FILTER (WHERE valid_to IS NULL), count(*) FROM network_grid WHERE network_id = :n"
        ),
        {"n": first.get_json()["id"]},
    ).one()
    assert tuple(counts) == (len(models), 2 * len(models))
    # Reprojected from Gauss-Krüger, the copies still nest in their 网格.
    report = client.get(f"/api/networks/{first.get_json()['id']}/mismatch").get_json()
    assert report["summary"]["clean"] == len(models)


def test_a_centre_imports_only_inside_its_street(app, db_session, tmp_path, accounts) -> None:  # type: ignore[no-untyped-def]
    from tests.accounts import bearer

    village = db_session.execute(
        text(
            "SELECT code, name, ST_AsBinary(geom) FROM grid WHERE code = '34018810120101' AND valid_to IS NULL"
        )
    ).one()
    outside = write_geojson(
        tmp_path / "out.geojson", [(village[0], village[1], shapely.from_wkb(bytes(village[2])))]
    )
    c = app.test_client()
    with outside.open("rb") as f:
        res = c.post(
            "/api/networks/import",
            data={
                "file": (io.BytesIO(f.read()), "out.geojson"),
                "department": "CG-AH",
                "name": "街道外",
            },
            headers=bearer(accounts["centre"]),
            content_type="multipart/form-data",
        )
    assert res.status_code == 422
    assert "街道之外" in res.get_json()["error"]["problems"][0]["reason"]


def test_cli_imports_a_network_and_names_bad_rows(database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner
    from sqlalchemy import create_engine

    from app.cli import main

    engine = create_engine(database_url)
    with engine.connect() as conn:
        models = community_grids(conn)
    good = write_geojson(tmp_path / "jw.geojson", models)
    bad = write_geojson(
        tmp_path / "bad.geojson",
        [models[0], (None, None, shapely.Point(117.2, 31.8).buffer(0.001).exterior)],
    )
    runner = CliRunner(env={"GRIDGOV_DATABASE_URL": database_url})
    try:
        refused = runner.invoke(
            main,
            ["import", "network", str(bad), "--department", "PCS-AH", "--name", "命令行警务网格"],
        )
        assert (
            refused.exit_code != 0
            and "第 2 个要素" in refused.output
            and "没有几何图形" in refused.output
        )
        done = runner.invoke(
            main,
            [
                "import",
                "network",
                str(good),
                "--department",
                "PCS-AH",
                "--name",
                "命令行警务网格",
                "--network-kind",
                "police",
                "--street",
                "340188001",
            ],
        )
        assert done.exit_code == 0, done.output
        assert f"imported {len(models)} grids" in done.output
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT n.kind, g.code, (SELECT count(*) FROM network_grid x WHERE x.network_id = n.id)"
                    " FROM network n JOIN grid g ON g.id = n.grid_id WHERE n.name = '命令行警务网格'"
                )
            ).one()
        assert tuple(row) == ("police", "340188001", len(models))
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM network WHERE name = '命令行警务网格'"))
        engine.dispose()


def test_network_tiles_draw_the_grids_a_caller_sees(
    app, client, db_session, tmp_path, accounts
) -> None:  # type: ignore[no-untyped-def]
    import math

    import mapbox_vector_tile

    from tests.auth.conftest import bearer

    models = community_grids(db_session)
    path = write_geojson(tmp_path / "sj.geojson", models[:2])
    net = post_network(client, path, department="SJ-AH", name="瓦片监管网格", kind="market")
    assert net.status_code == 201, net.get_json()
    point = models[0][2].representative_point()
    z = 14
    n = 1 << z
    x = int((point.x + 180) / 360 * n)
    lat = math.radians(point.y)
    y = int((1 - math.log(math.tan(lat) + 1 / math.cos(lat)) / math.pi) / 2 * n)
    res = client.get(f"/tiles/networks/{z}/{x}/{y}.mvt")
    assert res.status_code == 200 and res.mimetype == "application/vnd.mapbox-vector-tile"
    layer = mapbox_vector_tile.decode(res.data)["networks"]
    codes = {f["properties"]["code"] for f in layer["features"]}
    assert "PCS-01" in codes
    feature = next(f for f in layer["features"] if f["properties"]["code"] == "PCS-01")
    assert feature["properties"]["network"] == "瓦片监管网格"
    assert feature["properties"]["department"] == "安和市场监管所"
    # Another department sees none of the market supervisors' grids.
    other = app.test_client().get(
        f"/tiles/networks/{z}/{x}/{y}.mvt", headers=bearer(accounts["department"])
    )
    assert other.status_code == 200
    decoded = mapbox_vector_tile.decode(other.data) if other.data else {}
    assert not decoded.get("networks", {}).get("features")
    assert client.get("/tiles/networks/40/0/0.mvt").status_code == 400


@pytest.mark.browser
def test_a_responsible_persons_photo_shows_on_the_notice_board(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image
    from pypdf import PdfReader

    from tests.auth.conftest import bearer

    gid, wid = db_session.execute(
        text(
            """SELECT g.id, a.worker_id FROM grid g JOIN grid_assignment a ON a.grid_id = g.id
               JOIN worker w ON w.id = a.worker_id
               WHERE g.code = '34018800100101' AND g.valid_to IS NULL AND w.on_duty
               AND a.role <> 'party_member' ORDER BY a.worker_id LIMIT 1"""
        )
    ).one()
    plain = PdfReader(io.BytesIO(client.get(f"/grids/{gid}/notice.pdf").data))
    assert not list(plain.pages[0].images)  # placeholders only
    buf = io.BytesIO()
    Image.new("RGB", (900, 1200), (30, 90, 160)).save(buf, "PNG")
    res = client.put(
        f"/api/workers/{wid}/photo",
        data={"photo": (io.BytesIO(buf.getvalue()), "chief.png")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["media_type"] == "image/jpeg" and res.get_json()["height"] == 480
    pdf = PdfReader(io.BytesIO(client.get(f"/grids/{gid}/notice.pdf").data))
    assert len(list(pdf.pages[0].images)) == 1
    bad = client.put(
        f"/api/workers/{wid}/photo",
        data={"photo": (io.BytesIO(b"GIF89a not a photo"), "x.gif")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422
    other = db_session.scalar(
        text(
            "SELECT a.worker_id FROM grid_assignment a JOIN grid g ON g.id = a.grid_id"
            " WHERE g.code LIKE '340188101%' ORDER BY 1 LIMIT 1"
        )
    )
    far = app.test_client().put(
        f"/api/workers/{other}/photo",
        data={"photo": (io.BytesIO(buf.getvalue()), "p.png")},
        headers=bearer(accounts["centre"]),
    )
    assert far.status_code == 404

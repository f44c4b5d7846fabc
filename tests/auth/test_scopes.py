"""Lists and figures narrow to the caller's grids: cases, KPIs, the case ledger."""

from __future__ import annotations

from sqlalchemy import text

from tests.auth.conftest import bearer


def _point_in(db_session, code: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    return db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
            "WHERE code = :c AND valid_to IS NULL) s"
        ),
        {"c": code},
    ).one()


def _report(client, db_session, code: str, what: str) -> dict:  # type: ignore[no-untyped-def]
    x, y = _point_in(db_session, code)
    res = client.post(
        "/api/cases", json={"x": x, "y": y, "category": "garbage", "description": what}
    )
    assert res.status_code == 201, res.get_json()
    return res.get_json()["case"]


def test_case_lists_kpis_and_ledgers_hold_only_ones_own_cases(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    own = _report(client, db_session, "3401880010010101", "本网格的垃圾")
    other = _report(client, db_session, "34018810120101", "桃园村的垃圾")
    escalated = _report(client, db_session, "3401880010010102", "交城管的垃圾")
    db_session.execute(
        text('UPDATE "case" SET department_id = :d, escalation_level = 2 WHERE id = :c'),
        {"d": accounts["department"].department_id, "c": escalated["id"]},
    )
    c = app.test_client()

    def listed(role: str) -> set[int]:
        res = c.get("/api/cases?limit=5000", headers=bearer(accounts[role]))
        assert res.status_code == 200, res.get_json()
        return {i["id"] for i in res.get_json()["items"]}

    everything = listed("admin")
    assert {own["id"], other["id"], escalated["id"]} <= everything
    for role in ("centre", "grid_chief", "micro_chief", "worker", "party_member"):
        seen = listed(role)
        assert own["id"] in seen and other["id"] not in seen, role
    assert escalated["id"] in listed("grid_chief")  # its grid is below the chief's
    assert escalated["id"] not in listed("micro_chief")  # another micro-grid
    dept_seen = listed("department")
    assert escalated["id"] in dept_seen and own["id"] not in dept_seen
    departments = db_session.scalars(
        text('SELECT DISTINCT department_id FROM "case" WHERE id = ANY(:ids)'),
        {"ids": sorted(dept_seen)},
    ).all()
    assert departments == [accounts["department"].department_id]  # only what was sent to it

    def total(role: str) -> int:
        res = c.get("/api/cases/kpis?group=all", headers=bearer(accounts[role]))
        assert res.status_code == 200, res.get_json()
        return sum(i["total"] for i in res.get_json()["items"])

    assert total("grid_chief") < total("admin")
    before = total("grid_chief")
    _report(client, db_session, "34018810120102", "又一起桃园村的")
    assert total("grid_chief") == before  # a case elsewhere does not move his figures
    ledger = c.get("/api/cases/export.csv", headers=bearer(accounts["grid_chief"])).get_data(
        as_text=True
    )
    assert own["code"] in ledger and other["code"] not in ledger


# ------------------------------------------------------------------ grids, places, notice boards

STREET, TOWN = "340188001", "340188101"  # the centre's street; another street (青山镇)


def _grid(db_session, code: str) -> int:  # type: ignore[no-untyped-def]
    return db_session.scalar(
        text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": code}
    )


def _town_camera(db_session) -> None:  # type: ignore[no-untyped-def]
    """The sample's cameras are all in the street: put one in the town's village."""
    x, y = _point_in(db_session, "34018810120101")
    db_session.execute(
        text(
            "INSERT INTO camera (code, name, kind, analytics, geom, grid_id) VALUES "
            "('CAM-TY-0001', '桃园村监控', 'fixed', false, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g)"
        ),
        {"x": x, "y": y, "g": _grid(db_session, "34018810120101")},
    )


def _as(app, accounts, role: str):  # type: ignore[no-untyped-def]
    """A client calling as ``role`` (its bearer token on every request)."""
    c = app.test_client()
    headers = bearer(accounts[role])

    def call(method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        return c.open(path, method=method, headers=headers, **kwargs)

    return call


def test_a_street_centre_reads_only_its_streets_grids_and_notice_boards(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    centre = _as(app, accounts, "centre")
    codes = [f["properties"]["code"] for f in centre("GET", "/api/grids").get_json()["features"]]
    assert codes and all(c.startswith(STREET) for c in codes)
    town = _grid(db_session, TOWN)
    village_leaf = _grid(db_session, "34018810120101")
    for gid in (town, village_leaf):
        res = centre("GET", f"/api/grids/{gid}")
        assert res.status_code == 404 and "responsible" not in res.get_data(as_text=True)
        assert centre("GET", f"/api/grids/{gid}/households").status_code == 404
    own = centre("GET", f"/api/grids/{_grid(db_session, '3401880010010101')}").get_json()
    _town_camera(db_session)
    assert own["properties"]["responsible"]  # its own notice board, with names and phones
    # Service points and cameras: those in its street only; the administrator sees the town's.
    for path in ("/api/service-points", "/api/cameras", "/api/coverage/circles"):
        mine = centre("GET", path).get_json()["features"]
        everything = _as(app, accounts, "admin")("GET", path).get_json()["features"]
        assert len(mine) < len(everything), path
        grids = {f["properties"].get("grid_id") for f in mine}
        assert all(
            db_session.scalar(text("SELECT code FROM grid WHERE id = :g"), {"g": g}).startswith(
                STREET
            )
            for g in grids
            if g is not None
        ), path


def test_a_worker_sees_its_grids_and_only_the_outline_of_the_grids_above(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts, "micro_chief")  # W00009: micro-grid chief of 3401880010010101 only
    feats = worker("GET", "/api/grids").get_json()["features"]
    full = {f["properties"]["code"] for f in feats if not f["properties"]["outline"]}
    outline = {
        f["properties"]["code"]: f["properties"] for f in feats if f["properties"]["outline"]
    }
    assert full and all(c.startswith("3401880010010101") for c in full)
    assert set(outline) == {
        "340188001",
        "340188001001",
        "34018800100101",
    }  # street, community, grid
    for props in outline.values():
        assert set(props) == {
            "id",
            "code",
            "name",
            "level",
            "level_name",
            "kind",
            "parent_id",
            "outline",
        }
    above = worker("GET", f"/api/grids/{_grid(db_session, '34018800100101')}")
    assert above.status_code == 200
    props = above.get_json()["properties"]
    assert props["outline"] is True and "responsible" not in props and "children" not in props
    assert "household_count" not in props
    # Beside it: another micro-grid of the same grid, and the town — not at all.
    for code in ("3401880010010102", TOWN):
        assert worker("GET", f"/api/grids/{_grid(db_session, code)}").status_code == 404
    assert (
        worker("GET", f"/api/grids/{_grid(db_session, '34018800100101')}/households").status_code
        == 404
    )


# ------------------------------------------------------------------ exports and imports


def _csv_rows(res) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    import csv
    import io

    assert res.status_code == 200, res.get_data(as_text=True)[:300]
    return list(csv.DictReader(io.StringIO(res.get_data(as_text=True).lstrip("\ufeff"))))


def test_exports_hold_only_ones_streets_records_and_tags_only_for_those_responsible(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    _town_camera(db_session)
    centre, admin = _as(app, accounts, "centre"), _as(app, accounts, "admin")
    rows = _csv_rows(centre("GET", "/api/export/households?format=csv&include_personal=true"))
    assert rows and all(r["grid_code"].startswith(STREET) for r in rows)
    assert "tags" in rows[0]  # its street's centre answers for the households
    everything = _csv_rows(admin("GET", "/api/export/households?format=csv&include_personal=true"))
    assert any(r["grid_code"].startswith(TOWN) for r in everything)
    assert "tags" not in everything[0]  # the administrator runs the system, not the grids
    for kind, column in (
        ("grids", "code"),
        ("cameras", "grid_code"),
        ("service_points", "grid_code"),
    ):
        mine = _csv_rows(centre("GET", f"/api/export/{kind}?format=csv"))
        assert mine and all(r[column].startswith(STREET) for r in mine), kind
        assert len(mine) < len(_csv_rows(admin("GET", f"/api/export/{kind}?format=csv"))), kind
    workers = {r["code"] for r in _csv_rows(centre("GET", "/api/export/workers?format=csv"))}
    assert "W00005" in workers and "W01043" not in workers  # W01043 works in 桃园村
    chief = _csv_rows(_as(app, accounts, "grid_chief")("GET", "/api/export/grids?format=csv"))
    assert {r["code"] for r in chief} >= {"34018800100101"} and all(
        r["code"].startswith("34018800100101") for r in chief
    )


def test_a_centre_imports_only_into_its_street_and_never_grids_or_workers(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    import io

    centre = _as(app, accounts, "centre")
    (ox, oy), (tx, ty) = (
        _point_in(db_session, "3401880010010101"),
        _point_in(db_session, "34018810120101"),
    )
    before = db_session.scalar(text("SELECT count(*) FROM household"))
    data = f"lon,lat,address,people\n{ox},{oy},本街道1号,2\n{tx},{ty},桃园村2号,3\n".encode()
    res = centre("POST", "/api/import/households", data={"file": (io.BytesIO(data), "hh.csv")})
    assert res.status_code == 422, res.get_json()
    problems = res.get_json()["error"]["problems"]
    assert len(problems) == 1 and problems[0]["field"] == "location" and "3" in problems[0]["where"]
    assert db_session.scalar(text("SELECT count(*) FROM household")) == before  # refused whole
    cams = f"code,lon,lat\nCAM-X-1,{tx},{ty}\n".encode()
    res = centre("POST", "/api/import/cameras", data={"file": (io.BytesIO(cams), "c.csv")})
    assert res.status_code == 422 and res.get_json()["error"]["problems"][0]["field"] == "location"
    sp = f"name,kind,lon,lat\n远处站,station,{tx},{ty}\n".encode()
    res = centre("POST", "/api/import/service_points", data={"file": (io.BytesIO(sp), "s.csv")})
    assert res.status_code == 422, res.get_json()
    assign = b"worker_code,grid_code,role\nW00005,34018810120101,worker_part\n"
    res = centre("POST", "/api/import/assignments", data={"file": (io.BytesIO(assign), "a.csv")})
    assert res.status_code == 422 and "34018810120101" in res.get_json()["error"]["message"]
    for kind in ("grids", "workers", "departments"):
        res = centre(
            "POST", f"/api/import/{kind}", data={"file": (io.BytesIO(b"code,name\nX,Y\n"), "x.csv")}
        )
        assert res.status_code == 403, kind
    ok = f"lon,lat,address,people\n{ox},{oy},本街道1号,2\n".encode()
    res = centre("POST", "/api/import/households", data={"file": (io.BytesIO(ok), "hh.csv")})
    assert res.status_code == 201, res.get_json()


# ------------------------------------------------------------------ settings, areas, locate


def test_global_settings_are_the_administrators(app, accounts) -> None:  # type: ignore[no-untyped-def]
    res = _as(app, accounts, "centre")("PUT", "/api/case-settings", json={"duplicate_radius_m": 70})
    assert res.status_code == 403
    res = _as(app, accounts, "admin")("PUT", "/api/case-settings", json={"duplicate_radius_m": 70})
    assert res.status_code == 200 and res.get_json()["duplicate_radius_m"] == 70


def _square(x: float, y: float, d: float = 0.00005) -> dict:
    return {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]
            ],
        },
        "properties": {
            "name": "测试市场",
            "category": "road_occupation",
            "department_code": "CG-AH",
        },
    }


def test_override_areas_are_drawn_read_and_edited_only_within_ones_street(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    centre, admin = _as(app, accounts, "centre"), _as(app, accounts, "admin")
    (ox, oy), (tx, ty) = (
        _point_in(db_session, "3401880010010101"),
        _point_in(db_session, "34018810120101"),
    )
    assert centre("POST", "/api/override-areas", json=_square(tx, ty)).status_code == 422
    straddling = _square(ox, oy)
    straddling["geometry"]["coordinates"][0][1][0] = tx  # reaches across into the town
    straddling["geometry"]["coordinates"][0][2][0] = tx
    assert centre("POST", "/api/override-areas", json=straddling).status_code in (422,)
    theirs = admin("POST", "/api/override-areas", json=_square(tx, ty)).get_json()
    mine = centre("POST", "/api/override-areas", json=_square(ox, oy))
    assert mine.status_code == 201, mine.get_json()
    listed = {f["id"] for f in centre("GET", "/api/override-areas").get_json()["features"]}
    assert mine.get_json()["id"] in listed and theirs["id"] not in listed
    for method, body in (
        ("GET", None),
        ("PUT", {"type": "Feature", "geometry": None, "properties": {"name": "改"}}),
        ("DELETE", {}),
    ):
        assert centre(method, f"/api/override-areas/{theirs['id']}", json=body).status_code == 404
    moved = {**_square(tx, ty), "properties": {"name": "搬走"}}
    assert (
        centre("PUT", f"/api/override-areas/{mine.get_json()['id']}", json=moved).status_code == 422
    )
    worker = db_session.scalar(text("SELECT id FROM worker WHERE code = 'W01043'"))
    kept = {
        **_square(ox, oy),
        "properties": {"name": "外人", "category": "road_occupation", "worker_id": worker},
    }
    assert centre("POST", "/api/override-areas", json=kept).status_code == 422
    keepers = {
        w["code"] for w in centre("GET", "/api/override-areas/keepers").get_json()["workers"]
    }
    assert "W00005" in keepers and "W01043" not in keepers


def test_locate_and_neighbours_name_owners_only_in_ones_grids(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts, "micro_chief")
    (ox, oy), (tx, ty) = (
        _point_in(db_session, "3401880010010101"),
        _point_in(db_session, "34018810120101"),
    )
    assert worker("GET", f"/api/locate?lon={ox}&lat={oy}").status_code == 200
    assert worker("GET", f"/api/locate?lon={tx}&lat={ty}").status_code == 404
    assert worker("GET", f"/api/locate/neighbours?lon={tx}&lat={ty}").status_code == 404
    # On its micro-grid's edge: the neighbour across it is named, its people masked.
    x, y = db_session.execute(
        text(
            """SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_LineInterpolatePoint(ST_GeometryN(ST_LineMerge(
                 ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 2)), 1), 0.5) p
               FROM grid a, grid b WHERE a.code = '3401880010010101' AND b.valid_to IS NULL
                 AND a.valid_to IS NULL AND b.level = 4 AND b.id <> a.id
                 AND ST_Dimension(ST_Intersection(a.geom, b.geom)) = 1 LIMIT 1) s"""
        )
    ).one()
    own = _grid(db_session, "3401880010010101")
    res = worker("GET", f"/api/locate/neighbours?lon={x}&lat={y}&grid={own}")
    assert res.status_code == 200, res.get_json()
    neighbours = res.get_json()["neighbours"]
    assert neighbours
    for n in neighbours:
        owner = n["owner"]
        if owner and owner.get("kind") == "worker":
            assert "*" in owner["phone"]


# ------------------------------------------------------------------ cases: transfer, merge, duplicates, Open311


def test_transfers_go_only_to_a_grid_holding_the_case_within_ones_grids(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    case = _report(client, db_session, "3401880010010101", "转派测试")
    far_grid = _grid(db_session, "34018810120101")
    far_worker = db_session.scalar(text("SELECT id FROM worker WHERE code = 'W01043'"))
    near_worker = db_session.scalar(text("SELECT id FROM worker WHERE code = 'W00009'"))
    body = {"note": "转派", "worker_id": near_worker, "grid_id": far_grid}
    for role in ("admin", "centre"):
        res = _as(app, accounts, role)(
            "POST", f"/api/cases/{case['id']}/actions/transfer", json=body
        )
        assert res.status_code == 422 and res.get_json()["error"]["field"] == "grid_id", (
            role,
            res.get_json(),
        )
    body = {"note": "转派", "worker_id": far_worker}
    res = _as(app, accounts, "centre")(
        "POST", f"/api/cases/{case['id']}/actions/transfer", json=body
    )
    assert res.status_code == 422 and res.get_json()["error"]["field"] == "worker_id"
    res = _as(app, accounts, "centre")(
        "POST", f"/api/cases/{case['id']}/actions/transfer", json={"note": "转派", "within_m": 5000}
    )
    assert res.status_code == 422 and res.get_json()["error"]["field"] == "within_m"
    # Within its street, to a worker there, in the grid holding the case: done.
    own_grid = _grid(db_session, "3401880010010101")
    body = {"note": "转派", "worker_id": near_worker, "grid_id": own_grid}
    res = _as(app, accounts, "centre")(
        "POST", f"/api/cases/{case['id']}/actions/transfer", json=body
    )
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["case"]["assignee"]["id"] == near_worker


def test_merge_only_into_a_case_one_may_see(app, client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    own = _report(client, db_session, "3401880010010101", "合并测试")
    other = _report(client, db_session, "34018810120101", "桃园村的合并测试")
    res = _as(app, accounts, "centre")(
        "POST",
        f"/api/cases/{own['id']}/actions/merge",
        json={"into": other["code"], "note": "重复"},
    )
    assert res.status_code == 404 and other["code"] in res.get_json()["error"]["message"]
    assert (
        db_session.scalar(text('SELECT merged_into_id FROM "case" WHERE id = :c'), {"c": own["id"]})
        is None
    )


def test_duplicates_are_near_and_only_ones_own(app, client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    mine = _report(client, db_session, "3401880010010101", "重复甲")
    beside = _report(client, db_session, "3401880010010102", "重复乙")
    admin_sees = _as(app, accounts, "admin")(
        "GET", f"/api/cases/{mine['id']}/duplicates?radius=500"
    ).get_json()
    assert beside["id"] in {d["id"] for d in admin_sees}
    chief = _as(app, accounts, "micro_chief")  # answers for 3401880010010101 only
    seen = chief("GET", f"/api/cases/{mine['id']}/duplicates?radius=500").get_json()
    assert beside["id"] not in {d["id"] for d in seen}
    assert chief("GET", f"/api/cases/{mine['id']}/duplicates?radius=5000").status_code == 400


def test_open311_staff_list_holds_only_ones_streets_requests(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    own = _report(client, db_session, "3401880010010101", "Open311甲")
    other = _report(client, db_session, "34018810120101", "Open311乙")
    listed = {
        r["service_request_id"]
        for r in _as(app, accounts, "centre")("GET", "/open311/v2/requests.json").get_json()
    }
    assert own["public_code"] in listed and other["public_code"] not in listed
    # The staff's internal code is no Open311 id (only the resident's public code is).
    by_id = _as(app, accounts, "centre")(
        "GET", f"/open311/v2/requests.json?service_request_id={other['code']}"
    )
    assert by_id.status_code == 404
    everything = {
        r["service_request_id"]
        for r in _as(app, accounts, "admin")("GET", "/open311/v2/requests.json").get_json()
    }
    assert {own["public_code"], other["public_code"]} <= everything


def test_coverage_is_of_ones_own_grids(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    centre = _as(app, accounts, "centre")
    res = centre("GET", "/api/coverage?level=2&area=false")
    assert res.status_code == 200 and res.get_json()["grid"]["code"] == STREET
    assert all(g["code"].startswith(STREET) for g in res.get_json()["grids"])
    assert centre("GET", f"/api/coverage?grid={_grid(db_session, TOWN)}").status_code == 404
    assert (
        centre("GET", f"/api/coverage/uncovered?grid={_grid(db_session, TOWN)}").status_code == 404
    )
    (tx, ty) = _point_in(db_session, "34018810120101")
    assert centre("POST", "/api/coverage/accept", json={"lon": tx, "lat": ty}).status_code == 404
    assert (
        db_session.scalar(
            text("SELECT count(*) FROM service_point WHERE ST_X(geom) = :x"), {"x": tx}
        )
        == 0
    )


def test_a_centre_neither_draws_a_top_level_grid_nor_raises_another_streets_camera_events(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    centre = _as(app, accounts, "centre")
    (tx, ty) = _point_in(db_session, "34018810120101")
    square = _square(tx, ty, 0.0002)
    square["properties"] = {"name": "新的顶级网格"}
    res = centre("POST", "/api/grids", json=square)
    assert res.status_code == 403, res.get_json()
    _town_camera(db_session)
    before = db_session.scalar(text('SELECT count(*) FROM "case"'))
    res = centre(
        "POST", "/api/camera-events", json={"camera": "CAM-TY-0001", "event_type": "street_vending"}
    )
    assert res.status_code == 404, res.get_json()
    assert db_session.scalar(text('SELECT count(*) FROM "case"')) == before
    res = centre(
        "POST", "/api/camera-events", json={"camera": "CAM-AH-0001", "event_type": "street_vending"}
    )
    assert res.status_code == 201, res.get_json()


def test_a_batch_locate_masks_the_owners_of_points_outside_ones_street(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    import csv
    import io

    (ox, oy), (tx, ty) = (
        _point_in(db_session, "3401880010010101"),
        _point_in(db_session, "34018810120101"),
    )
    points = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": i,
                "properties": {},
                "geometry": {"type": "Point", "coordinates": [x, y]},
            }
            for i, (x, y) in enumerate(((ox, oy), (tx, ty)))
        ],
    }
    for role, masked in (("admin", False), ("centre", True)):
        res = _as(app, accounts, role)("POST", "/api/locate/batch", json=points)
        own, town = res.get_json()["results"]
        assert "*" not in own["owner"]["phone"]
        assert ("*" in town["owner"]["phone"]) is masked, role
        res = _as(app, accounts, role)("POST", "/api/locate/batch?output=csv", json=points)
        own, town = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
        assert "*" not in own["owner_phone"] and ("*" in town["owner_phone"]) is masked, role


def test_patches_name_only_ones_own_party_members(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    stranger = db_session.scalar(text("SELECT id FROM worker WHERE code = 'W01043'"))
    member = db_session.scalar(text("SELECT id FROM worker WHERE code = 'W00010'"))
    leaf = _grid(db_session, "3401880010010101")
    res = _as(app, accounts, "centre")(
        "POST", f"/api/grids/{leaf}/patches", json={"members": [member, stranger]}
    )
    assert res.status_code == 404 and str(stranger) in res.get_json()["error"]["message"]
    res = _as(app, accounts, "centre")(
        "POST", f"/api/grids/{leaf}/patches", json={"members": [member]}
    )
    assert res.status_code in (200, 422), res.get_json()

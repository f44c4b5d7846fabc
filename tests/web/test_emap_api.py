"""The e-map's small JSON calls: where it opens, the names it writes, the grid under a click —
each within the caller's grids."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import text

from app.services.emap import _text_width, _world_px
from tests.auth.conftest import bearer
from tests.web.test_tiles import STREET_A, STREET_B, centre_of, grid_ids_under

OWN_MICRO = "3401880010010101"


def test_home_is_the_extent_of_the_callers_grids(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    micro = db_session.execute(
        text(
            "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM grid"
            " WHERE code = :c AND valid_to IS NULL"
        ),
        {"c": OWN_MICRO},
    ).one()
    worker = c.get("/api/emap/home", headers=bearer(accounts["worker"])).get_json()["bbox"]
    # The worker's micro-grids lie in the street; the worker's extent is no bigger than needed.
    lon, lat = (worker[0] + worker[2]) / 2, (worker[1] + worker[3]) / 2
    assert worker[0] <= micro[0] + 1e-9 and worker[3] >= micro[3] - 1e-9
    street = c.get("/api/emap/home", headers=bearer(accounts["centre"])).get_json()["bbox"]
    assert street[0] <= worker[0] and street[2] >= worker[2] and street[1] <= worker[1]
    assert -180 <= lon <= 180 and -90 <= lat <= 90
    assert (
        c.get("/api/emap/home", headers=bearer(accounts["department"])).get_json()["bbox"] is None
    )


@pytest.mark.parametrize("role", ["admin", "centre", "worker"])
def test_labels_never_overlap_and_stay_in_scope(app, db_session, accounts, role: str) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    lon, lat = centre_of(db_session, STREET_A)
    for zoom in (12, 14, 15.5, 17):
        span = 360 / 2**zoom * 6
        bbox = f"{lon - span:.6f},{lat - span / 2:.6f},{lon + span:.6f},{lat + span / 2:.6f}"
        res = c.get(f"/api/emap/labels?bbox={bbox}&zoom={zoom}", headers=bearer(accounts[role]))
        assert res.status_code == 200, res.get_json()
        labels = res.get_json()["labels"]
        boxes = []
        for lb in labels:
            x, y = _world_px(lb["lon"], lb["lat"], zoom)
            w, h = lb["width"], lb["height"]
            assert w >= _text_width(lb["name"], 12) - 1
            boxes.append((x - w / 2, y - h / 2, x + w / 2, y + h / 2))
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
        ids = {lb["grid_id"] for lb in labels}
        if role == "admin" and zoom == 14:
            assert len(labels) > 5
        if role == "centre":
            assert ids <= grid_ids_under(db_session, STREET_A)
        if role == "worker":
            assert not ids & grid_ids_under(db_session, STREET_B)
            scope = set(
                db_session.scalars(
                    text(
                        """WITH RECURSIVE t AS (SELECT grid_id AS id FROM grid_assignment a
                   JOIN worker w ON w.id = a.worker_id WHERE w.code = 'W00005'
                   UNION SELECT g.id FROM grid g JOIN t ON g.parent_id = t.id) SELECT id FROM t"""
                    )
                )
            )
            assert ids <= scope


def test_pick_gives_the_deepest_grid_shown_within_scope(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    lon, lat = centre_of(db_session, OWN_MICRO)

    def pick(
        role: str, zoom: float, lo: float = lon, la: float = lat, extra: str = ""
    ) -> dict | None:
        res = c.get(
            f"/api/emap/pick?lon={lo}&lat={la}&zoom={zoom}{extra}", headers=bearer(accounts[role])
        )
        assert res.status_code == 200, res.get_json()
        fs = res.get_json()["features"]
        return fs[0]["properties"] if fs else None

    assert pick("admin", 16)["code"].startswith(OWN_MICRO)  # the micro-grid (or a patch of it)
    assert pick("admin", 16, extra="&max_level=4")["code"] == OWN_MICRO
    assert pick("admin", 12)["level"] == 3 and OWN_MICRO.startswith(pick("admin", 12)["code"])
    assert pick("admin", 9)["level"] == 2
    assert "version" in pick("centre", 16)
    # Another street: nothing for the street's centre; an ancestor's outline, no more, for a worker.
    olon, olat = centre_of(db_session, STREET_B)
    assert pick("centre", 16, olon, olat) is None
    assert pick("department", 16) is None
    other_micro = db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid"
            " WHERE parent_id = (SELECT parent_id FROM grid WHERE code = :c AND valid_to IS NULL)"
            " AND code <> :c AND valid_to IS NULL ORDER BY code DESC LIMIT 1) s"
        ),
        {"c": OWN_MICRO},
    ).one()
    got = pick("worker", 16, *other_micro)
    if got is not None and got.get("outline"):
        assert set(got) == {"id", "name", "code", "level", "outline"}
    assert pick("worker", 16, olon, olat) is None


def test_bad_parameters_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/emap/labels?zoom=14").status_code == 400
    assert client.get("/api/emap/labels?bbox=1,2,3,4").status_code == 400
    assert client.get("/api/emap/pick?lon=117.2&lat=31.8").status_code == 400
    assert client.get("/api/emap/pick?lon=517.2&lat=31.8&zoom=3").status_code == 400
    assert math.isfinite(
        client.get("/api/emap/labels?bbox=-180,-85,180,85&zoom=0").get_json()["zoom"]
    )

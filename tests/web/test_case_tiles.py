"""Open cases on the e-map come as the ``cases`` tile layer: for each role exactly the open cases
its case list shows in the tile, with code, category and status and nothing personal."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.auth.conftest import bearer
from tests.web.test_tiles import decode, features, tile_of

PLACES = {
    "own": "3401880010010101",
    "sibling": "3401880010010102",
    "other_street": "34018810120101",
}


def _report(client, db_session, code: str, what: str) -> dict:  # type: ignore[no-untyped-def]
    x, y = db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
            "WHERE code = :c AND valid_to IS NULL) s"
        ),
        {"c": code},
    ).one()
    res = client.post(
        "/api/cases",
        json={
            "x": x,
            "y": y,
            "category": "garbage",
            "description": what,
            "reporter_contact": "13900001111",
        },
    )
    assert res.status_code == 201, res.get_json()
    return res.get_json()["case"]


@pytest.mark.parametrize(
    "role", ["admin", "centre", "grid_chief", "micro_chief", "worker", "department"]
)
def test_the_case_tiles_hold_what_the_case_list_shows(
    app, client, db_session, accounts, role: str
) -> None:  # type: ignore[no-untyped-def]
    made = {k: _report(client, db_session, code, f"{k}的垃圾") for k, code in PLACES.items()}
    closed = _report(client, db_session, PLACES["own"], "已撤销的垃圾")
    db_session.execute(
        text("UPDATE \"case\" SET status = 'cancelled' WHERE id = :i"), {"i": closed["id"]}
    )
    overdue = made["own"]
    db_session.execute(
        text("UPDATE \"case\" SET deadline = now() - interval '1 hour' WHERE id = :i"),
        {"i": overdue["id"]},
    )
    escalated = made["sibling"]
    db_session.execute(
        text('UPDATE "case" SET department_id = :d, escalation_level = 2 WHERE id = :c'),
        {"d": accounts["department"].department_id, "c": escalated["id"]},
    )
    c = app.test_client()
    headers = bearer(accounts[role])
    listed = c.get("/api/cases?limit=5000&open=true", headers=headers)
    assert listed.status_code == 200, listed.get_json()
    expected = {i["code"] for i in listed.get_json()["items"]} & {m["code"] for m in made.values()}

    seen: dict[str, dict] = {}
    for case in made.values():
        lon, lat = case["point"]["lon"], case["point"]["lat"]
        for z in (11, 14, 17):
            zz, x, y = tile_of(lon, lat, z)
            t = decode(c.get(f"/tiles/cases/{zz}/{x}/{y}.mvt", headers=headers))
            for f in features(t, "cases"):
                seen[f["properties"]["code"]] = f["properties"]
    mine = {code for code in seen if code in {m["code"] for m in made.values()} | {closed["code"]}}
    assert mine == expected, role
    assert closed["code"] not in seen  # a cancelled case is not on the map
    for props in seen.values():
        assert set(props) <= {
            "code",
            "category",
            "category_name",
            "status",
            "overdue",
        }  # nothing personal
    if overdue["code"] in seen:
        assert seen[overdue["code"]]["overdue"] is True
        assert seen[overdue["code"]]["category_name"] == db_session.scalar(
            text("SELECT name FROM case_category WHERE code = 'garbage'")
        )
    if role == "admin":
        assert expected == {m["code"] for m in made.values()}
    if role == "department":
        assert expected == {escalated["code"]}

"""The audit log: every change with who, when and what (boundaries before and after for grid
edits), sign-ins and outs, append-only in the database, readable and exportable by admins."""

from __future__ import annotations

import pytest
from shapely.geometry import mapping, shape
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.api.case_helpers import report
from tests.auth.conftest import bearer


def _entries(db_session, since: int = 0, **where):  # type: ignore[no-untyped-def]
    """Entries matching ``where`` after entry ``since`` (other tests' committed entries stay:
    the log is append-only)."""
    cond = " AND ".join([f"{k} = :{k}" for k in where] + ["id > :since"])
    return (
        db_session.execute(
            text(f"SELECT * FROM audit_log WHERE {cond} ORDER BY id"), {**where, "since": since}
        )
        .mappings()
        .all()
    )


def _last_id(db_session) -> int:  # type: ignore[no-untyped-def]
    return db_session.scalar(text("SELECT coalesce(max(id), 0) FROM audit_log"))


def _leaf(client):  # type: ignore[no-untyped-def]
    return next(
        f
        for f in client.get("/api/grids?level=4").get_json()["features"]
        if f["properties"]["is_leaf"] and f["properties"]["household_count"] > 10
    )


def test_a_grid_reshape_is_recorded_with_the_boundary_before_and_after(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = _leaf(client)
    start = _last_id(db_session)
    old = shape(grid["geometry"])
    smaller = old.buffer(-0.00003)
    res = client.patch(
        f"/api/grids/{grid['id']}",
        json={
            "type": "Feature",
            "geometry": mapping(smaller),
            "properties": {"version": grid["properties"]["version"]},
        },
    )
    assert res.status_code == 200, res.get_json()
    (entry,) = _entries(
        db_session, start, kind="change", object_type="grid", object_id=str(grid["id"])
    )
    assert entry["username"] == "test-admin" and entry["role"] == "admin"
    assert entry["action"] == "PATCH grid_edit_api.patch" and entry["at"] is not None
    # the reshaped grid (a shrink may also touch the parent, which then holds what fell out)
    (before,) = [g for g in entry["before"][0] if g["id"] == grid["id"]]
    (after,) = [g for g in entry["after"][0]["grids"] if g["id"] == grid["id"]]
    assert shape(before["geometry"]).equals_exact(old, 1e-6)
    # the log keeps 7 decimals (about 1 cm)
    assert shape(after["geometry"]).hausdorff_distance(smaller) < 2e-7
    assert entry["detail"]["body"]["geometry"] == "<dict>"  # not the whole geometry again


def test_a_split_records_the_old_grid_and_both_parts(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = _leaf(client)
    start = _last_id(db_session)
    minx, miny, maxx, maxy = shape(grid["geometry"]).bounds
    mid = (minx + maxx) / 2
    line = {"type": "LineString", "coordinates": [[mid, miny - 0.001], [mid, maxy + 0.001]]}
    res = client.post(
        f"/api/grids/{grid['id']}/split",
        json={"line": line, "version": grid["properties"]["version"]},
    )
    assert res.status_code in (200, 201), res.get_json()
    (entry,) = _entries(
        db_session, start, kind="change", object_type="grid", object_id=str(grid["id"])
    )
    (before,) = [g for g in entry["before"][0] if g["id"] == grid["id"]]
    parts = [g for g in entry["after"][0]["grids"] if g["id"] != grid["id"]]
    assert len(parts) == 2
    whole = shape(before["geometry"])
    assert abs(sum(shape(p["geometry"]).area for p in parts) - whole.area) < 1e-4 * whole.area


def test_a_refused_change_leaves_no_entry_and_a_dry_run_changes_nothing(client, db_session) -> None:  # type: ignore[no-untyped-def]
    grid = _leaf(client)
    start = len(_entries(db_session, kind="change"))
    bad = client.post(
        f"/api/grids/{grid['id']}/split",
        json={
            "line": {"type": "LineString", "coordinates": [[0, 0], [0.1, 0.1]]},
            "version": grid["properties"]["version"],
        },
    )
    assert bad.status_code == 422
    dry = client.patch(
        f"/api/grids/{grid['id']}?dry_run=true",
        json={
            "type": "Feature",
            "geometry": None,
            "properties": {"name": "试一下", "version": grid["properties"]["version"]},
        },
    )
    assert dry.status_code == 200
    assert len(_entries(db_session, kind="change")) == start


def test_case_changes_are_recorded_without_personal_values(client, db_session) -> None:  # type: ignore[no-untyped-def]
    case = report(client, reporter_contact="13955556666", reporter_name="孙八")["case"]
    (entry,) = [
        e
        for e in _entries(db_session, kind="change")
        if e["action"] == "POST cases_api.create_case"
    ][-1:]
    body = entry["detail"]["body"]
    assert body["reporter_contact"] == body["reporter_name"] == "<personal data withheld>"
    assert "13955556666" not in str(dict(entry)) and "孙八" not in str(dict(entry))
    client.post(
        f"/api/cases/{case['id']}/actions/cancel", json={"note": "重复上报", "reason": "duplicate"}
    )
    acted = _entries(db_session, kind="change", object_type="case", object_id=str(case["id"]))
    assert [e["action"] for e in acted] == ["POST cases_api.act"]


def test_sign_in_failure_and_sign_out_are_recorded(anon_client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    from app.services import users

    users.create_user(db_session, "audited-one", "centre", "Audited-pass-1")
    assert (
        anon_client.post(
            "/api/auth/login", json={"username": "audited-one", "password": "nope-nope-1"}
        ).status_code
        == 401
    )
    ok = anon_client.post(
        "/api/auth/login", json={"username": "audited-one", "password": "Audited-pass-1"}
    )
    anon_client.post("/api/auth/logout", headers={"X-CSRF-Token": ok.get_json()["csrf_token"]})
    kinds = [e["kind"] for e in _entries(db_session) if e["username"] == "audited-one"]
    assert kinds == ["login_failed", "login", "logout"]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'nothing happened'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
def test_the_audit_log_is_append_only(client, db_session, statement: str) -> None:  # type: ignore[no-untyped-def]
    report(client)
    assert _entries(db_session)
    nested = db_session.begin_nested()
    # The app's role lacks the privilege; the owner is stopped by the triggers
    # (tests/test_db_roles.py shows both).
    with pytest.raises(DBAPIError, match="permission denied|append-only"):
        db_session.execute(text(statement))
    nested.rollback()
    assert _entries(db_session)


def test_admins_read_and_export_the_log_and_the_export_is_logged(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    report(client)
    listed = client.get("/api/audit?kind=change&limit=5").get_json()["items"]
    assert listed and all(e["kind"] == "change" for e in listed)
    csv = client.get("/api/audit/export.csv?kind=change")
    assert csv.status_code == 200 and "cases_api.create_case" in csv.get_data(as_text=True)
    assert _entries(db_session, kind="export", object_type="audit_log")
    c = app.test_client()
    assert c.get("/api/audit", headers=bearer(accounts["centre"])).status_code == 403

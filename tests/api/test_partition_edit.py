"""A committed division is a grid edit like a split: recorded with its boundaries before and
after, listed in the history, audited, and undone with every household back in its grid; new
codes follow the pattern of the siblings."""

from __future__ import annotations

import shapely
from geoalchemy2.shape import from_shape
from shapely.geometry import box, shape
from sqlalchemy import select, text

from app.models import Grid
from app.services import grid_edit
from gis.metric import polygon_area_m2

PLACED = ("household", "camera", "service_point", '"case"')


def _level3_with_children(db_session) -> dict:  # type: ignore[no-untyped-def]
    row = db_session.execute(
        text(
            "SELECT g.id, g.code, g.version, g.household_count FROM grid g"
            " WHERE g.level = 3 AND g.valid_to IS NULL AND g.code LIKE '340188001%'"
            " AND EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)"
            " AND NOT EXISTS (SELECT 1 FROM grid c JOIN grid d ON d.parent_id = c.id"
            "   WHERE c.parent_id = g.id AND c.valid_to IS NULL AND d.valid_to IS NULL)"
            " ORDER BY g.code LIMIT 1"
        )
    ).one()
    return dict(row._mapping)


def _where_everything_is(db_session) -> dict[str, dict[int, int | None]]:  # type: ignore[no-untyped-def]
    return {t: dict(db_session.execute(text(f"SELECT id, grid_id FROM {t}")).all()) for t in PLACED}


def _current_children(db_session, grid_id: int) -> dict[int, tuple[str, int]]:  # type: ignore[no-untyped-def]
    return {
        r.id: (r.code, r.household_count)
        for r in db_session.execute(
            text(
                "SELECT id, code, household_count FROM grid"
                " WHERE parent_id = :id AND valid_to IS NULL"
            ),
            {"id": grid_id},
        )
    }


def test_a_division_is_recorded_audited_and_undone_with_every_household_back(
    client, db_session
) -> None:  # type: ignore[no-untyped-def]
    grid = _level3_with_children(db_session)
    children = _current_children(db_session, grid["id"])
    placed = _where_everything_is(db_session)
    audit_mark = db_session.scalar(text("SELECT coalesce(max(id), 0) FROM audit_log"))

    res = client.post(
        f"/api/grids/{grid['id']}/partition",
        json={
            "k": 3,
            "seed": 2,
            "dry_run": False,
            "replace_children": True,
            "base_version": grid["version"],
        },
    )
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    change = body["change"]
    assert change["kind"] == "divide" and change["actor"] == "test-admin"
    created = body["created"]
    assert sorted(body["retired"]) == sorted(children)
    # The new codes continue the children's pattern: the parent's code and two digits,
    # after the highest number used under it.
    width = len(next(iter(children.values()))[0])
    highest = max(int(code[len(grid["code"]) :]) for code, _ in children.values())
    codes = sorted(f["properties"]["code"] for f in body["features"])
    assert codes == [f"{grid['code']}{n:02d}" for n in range(highest + 1, highest + 4)]
    assert all(len(c) == width for c in codes)
    # The divided grid has a new version: an edit based on the old one is refused.
    now = client.get(f"/api/grids/{grid['id']}").get_json()
    assert now["properties"]["version"] == grid["version"] + 1
    stale = client.post(
        f"/api/grids/{grid['id']}/partition",
        json={"k": 2, "dry_run": False, "replace_children": True, "base_version": grid["version"]},
    )
    assert stale.status_code == 409

    # The history of the grid lists the division with the grids before and after.
    history = client.get(f"/api/grids/{grid['id']}/history").get_json()
    (listed,) = [c for c in history["changes"] if c["id"] == change["id"]]
    assert listed["kind"] == "divide" and listed["kind_name"] == "自动划分"
    assert {b["id"] for b in listed["before"]} == {grid["id"], *children}
    assert sorted(a["id"] for a in listed["after"]) == sorted(created)
    assert listed["moved"]["household"] == grid["household_count"]

    # The audit entry carries the boundaries before (the grid and its old children) and after.
    (entry,) = db_session.execute(
        text(
            "SELECT before, after FROM audit_log WHERE id > :m AND kind = 'change'"
            " AND object_type = 'grid' AND object_id = :g"
        ),
        {"m": audit_mark, "g": str(grid["id"])},
    ).all()
    before_ids = {g["id"] for g in entry.before[0]}
    assert before_ids == {grid["id"], *children}
    after = entry.after[0]
    assert after["kind"] == "divide" and sorted(g["id"] for g in after["grids"]) == sorted(created)
    whole = shape(next(g for g in entry.before[0] if g["id"] == grid["id"])["geometry"])
    parts = shapely.union_all([shape(g["geometry"]) for g in after["grids"]])
    # the log keeps 7 decimals (about 1 cm)
    assert shapely.symmetric_difference(whole, parts).area < 1e-4 * whole.area

    # Undo: the old children come back with their codes, every household, camera, service
    # point and case is where it was, and the counts are as before.
    undo = client.post(f"/api/grids/changes/{change['id']}/undo")
    assert undo.status_code == 200, undo.get_json()
    assert _where_everything_is(db_session) == placed
    assert _current_children(db_session, grid["id"]) == children
    assert (
        db_session.scalar(
            text("SELECT count(*) FROM grid WHERE id = ANY(:ids) AND valid_to IS NULL"),
            {"ids": created},
        )
        == 0
    )
    again = client.post(f"/api/grids/changes/{change['id']}/undo")
    assert again.status_code == 409
    # A new division after the undo never reuses the codes the undone one gave.
    res = client.post(
        f"/api/grids/{grid['id']}/partition",
        json={"k": 2, "seed": 2, "dry_run": False, "replace_children": True},
    )
    assert res.status_code == 201, res.get_json()
    assert not set(codes) & {f["properties"]["code"] for f in res.get_json()["features"]}


def test_undoing_a_cut_into_patches_restores_links_and_members(client, db_session) -> None:  # type: ignore[no-untyped-def]
    micro = db_session.execute(
        text(
            "SELECT id FROM grid WHERE level = 4 AND valid_to IS NULL"
            " AND code LIKE '340188101%' ORDER BY code LIMIT 1"
        )
    ).scalar_one()
    members = (
        db_session.execute(
            text(
                "SELECT DISTINCT a.worker_id FROM grid_assignment a JOIN grid g ON g.id = a.grid_id"
                " WHERE a.role = 'party_member' AND (g.id = :id OR g.parent_id = :id)"
                " ORDER BY a.worker_id"
            ),
            {"id": micro},
        )
        .scalars()
        .all()
    )
    links = dict(db_session.execute(text("SELECT id, linked_member_id FROM household")).all())
    assignments = db_session.scalar(text("SELECT count(*) FROM grid_assignment"))
    placed = _where_everything_is(db_session)
    res = client.post(
        f"/api/grids/{micro}/patches",
        json={"members": members, "dry_run": False, "replace_children": True},
    )
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert body["change"]["kind"] == "divide"
    assert db_session.scalar(text("SELECT count(*) FROM grid_assignment")) > assignments
    undo = client.post(f"/api/grids/changes/{body['change']['id']}/undo")
    assert undo.status_code == 200, undo.get_json()
    assert (
        dict(db_session.execute(text("SELECT id, linked_member_id FROM household")).all()) == links
    )
    assert db_session.scalar(text("SELECT count(*) FROM grid_assignment")) == assignments
    assert _where_everything_is(db_session) == placed


def _add(db_session, code: str, level: int, parent: Grid | None, geom) -> Grid:  # type: ignore[no-untyped-def]
    g = Grid(
        code=code,
        name=code,
        level=level,
        kind="comprehensive",
        parent_id=parent.id if parent is not None else None,
        geom=from_shape(shapely.MultiPolygon([geom]), srid=4326),
        area_m2=polygon_area_m2(geom),
    )
    db_session.add(g)
    db_session.flush()
    return g


def test_new_codes_follow_the_siblings_pattern(client, db_session) -> None:  # type: ignore[no-untyped-def]
    # A town coded by hand with dashes, far from the sample: HEL > HEL-02 > HEL-02-00n.
    top = _add(db_session, "HEL", 1, None, box(100.0, 20.0, 100.1, 20.1))
    street = _add(db_session, "HEL-02", 2, top, box(100.0, 20.0, 100.1, 20.1))
    _add(db_session, "HEL-02-001", 3, street, box(100.0, 20.0, 100.05, 20.1))
    second = _add(db_session, "HEL-02-002", 3, street, box(100.05, 20.0, 100.1, 20.1))
    res = client.post(
        f"/api/grids/{second.id}/split",
        json={
            "line": {"type": "LineString", "coordinates": [[100.075, 19.99], [100.075, 20.11]]},
            "version": second.version,
        },
    )
    assert res.status_code == 200, res.get_json()
    assert sorted(f["properties"]["code"] for f in res.get_json()["features"]) == [
        "HEL-02-003",
        "HEL-02-004",
    ]
    grid = db_session.scalars(
        select(Grid).where(Grid.code == "HEL-02-003", Grid.valid_to.is_(None))
    ).one()
    # The first children of a dashed code continue it with a dash; a digit-only code with none.
    assert grid_edit.next_codes(db_session, grid, 2) == ["HEL-02-003-01", "HEL-02-003-02"]
    assert grid_edit.next_codes(db_session, top, 1) == ["HEL-03"]
    sample = db_session.scalars(
        select(Grid).where(Grid.code == "340188001001", Grid.valid_to.is_(None))
    ).one()
    codes = grid_edit.next_codes(db_session, sample, 1)
    assert codes[0].startswith("340188001001") and len(codes[0]) == len("34018800100101")


def _leaf(client, index: int):  # type: ignore[no-untyped-def]
    leaves = client.get("/api/grids?level=4").get_json()["features"]
    return [
        f for f in leaves if f["properties"]["is_leaf"] and f["properties"]["household_count"] > 20
    ][index]


def _line_across(feature) -> dict:  # type: ignore[no-untyped-def]
    minx, miny, maxx, maxy = shape(feature["geometry"]).bounds
    x = (minx + maxx) / 2
    return {"type": "LineString", "coordinates": [[x, miny - 0.001], [x, maxy + 0.001]]}


def test_whichever_comes_second_of_a_split_and_a_division_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    # Split first: the division made on the same version finds the grid history.
    grid = _leaf(client, 0)
    version = grid["properties"]["version"]
    split = client.post(
        f"/api/grids/{grid['id']}/split", json={"line": _line_across(grid), "version": version}
    )
    assert split.status_code == 200, split.get_json()
    late = client.post(
        f"/api/grids/{grid['id']}/partition",
        json={"k": 2, "roads": False, "dry_run": False, "base_version": version},
    )
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "grid_retired"
    # Division first: the split made on the same version is stale.
    grid = _leaf(client, 1)
    version = grid["properties"]["version"]
    divided = client.post(
        f"/api/grids/{grid['id']}/partition",
        json={"k": 2, "roads": False, "dry_run": False, "base_version": version},
    )
    assert divided.status_code == 201, divided.get_json()
    late = client.post(
        f"/api/grids/{grid['id']}/split", json={"line": _line_across(grid), "version": version}
    )
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "stale_version"

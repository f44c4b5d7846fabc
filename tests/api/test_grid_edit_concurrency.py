"""Two people edit the same grid at the same moment: exactly one wins, the other gets 409.

Runs against the live server (real concurrent transactions), many times over, then puts the
committed test data back as it was.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from shapely.geometry import mapping, shape
from shapely.ops import unary_union

from tests.committed import committed_state_restored

ROUNDS = 40


def call(base: str, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    req = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def race(*requests: tuple[str, str, Any, dict[str, str]]) -> list[tuple[int, Any]]:
    """Send the requests at the same instant from separate threads; return their answers."""
    barrier = threading.Barrier(len(requests))
    answers: list[tuple[int, Any]] = [(0, None)] * len(requests)

    def run(i: int, method: str, url: str, body: Any, headers: dict[str, str]) -> None:
        barrier.wait()
        base, path = url.split("|")
        answers[i] = call(base, method, path, body, **headers)

    threads = [threading.Thread(target=run, args=(i, *r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


@pytest.fixture()
def restored(database_url: str) -> Iterator[None]:
    """Put the committed test data back as it was after the test."""
    with committed_state_restored(database_url):
        yield


def test_two_simultaneous_edits_of_a_grid_one_wins_one_gets_409(live_server, restored) -> None:  # type: ignore[no-untyped-def]
    leaves = call(live_server, "GET", "/api/grids?level=4")[1]["features"]
    grid = next(
        f for f in leaves if f["properties"]["is_leaf"] and f["properties"]["household_count"]
    )
    gid = grid["id"]
    outcomes = []
    for i in range(ROUNDS):
        _, now = call(live_server, "GET", f"/api/grids/{gid}")
        version = now["properties"]["version"]
        names = [f"并发修改{i}甲", f"并发修改{i}乙"]
        answers = race(
            *(
                (
                    "PATCH",
                    f"{live_server}|/api/grids/{gid}",
                    {"type": "Feature", "geometry": None, "properties": {"name": n}},
                    {"If-Match": f'"{version}"'},
                )
                for n in names
            )
        )
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200, 409], answers
        winner = names[[s for s, _ in answers].index(200)]
        loser = next(body for status, body in answers if status == 409)["error"]
        assert loser["code"] == "stale_version"
        assert loser["current_version"] == version + 1
        _, after = call(live_server, "GET", f"/api/grids/{gid}")
        assert after["properties"]["name"] == winner  # never a silent overwrite
        changes = call(live_server, "GET", f"/api/grids/changes?grid={gid}&limit=1")[1]
        assert changes["changes"][0]["actor"] == "test-admin"
        assert after["properties"]["version"] == version + 1
        outcomes.append(winner)
    assert len(outcomes) == ROUNDS


def test_a_split_racing_a_reshape_leaves_one_consistent_result(live_server, restored) -> None:  # type: ignore[no-untyped-def]
    leaves = call(live_server, "GET", "/api/grids?level=4")[1]["features"]
    grid = [f for f in leaves if f["properties"]["is_leaf"] and f["properties"]["household_count"]][
        1
    ]
    gid = grid["id"]
    geom = shape(grid["geometry"])
    minx, miny, maxx, maxy = geom.bounds
    x = (minx + maxx) / 2
    line = {"type": "LineString", "coordinates": [[x, miny - 0.001], [x, maxy + 0.001]]}
    for _ in range(5):
        _, now = call(live_server, "GET", f"/api/grids/{gid}")
        version = now["properties"]["version"]
        answers = race(
            (
                "POST",
                f"{live_server}|/api/grids/{gid}/split",
                {"line": line, "version": version},
                {},
            ),
            (
                "PATCH",
                f"{live_server}|/api/grids/{gid}",
                {"geometry": mapping(shape(now["geometry"])), "version": version},
                {},
            ),
        )
        statuses = [status for status, _ in answers]
        assert sorted(statuses) == [200, 409], answers
        loser = answers[statuses.index(409)][1]["error"]
        assert loser["code"] in ("stale_version", "grid_retired")
        split_status, split_body = answers[0]
        if split_status == 200:
            change = split_body["change"]["id"]
            status, body = call(live_server, "POST", f"/api/grids/changes/{change}/undo")
            assert status == 200, body


def test_a_split_racing_a_division_of_the_same_grid_one_wins_one_gets_409(  # type: ignore[no-untyped-def]
    live_server, restored
) -> None:
    leaves = call(live_server, "GET", "/api/grids?level=4")[1]["features"]
    grid = [
        f for f in leaves if f["properties"]["is_leaf"] and f["properties"]["household_count"] > 20
    ][2]
    gid = grid["id"]
    minx, miny, maxx, maxy = shape(grid["geometry"]).bounds
    x = (minx + maxx) / 2
    line = {"type": "LineString", "coordinates": [[x, miny - 0.001], [x, maxy + 0.001]]}
    winners = set()
    for _ in range(4):
        _, now = call(live_server, "GET", f"/api/grids/{gid}")
        version = now["properties"]["version"]
        answers = race(
            (
                "POST",
                f"{live_server}|/api/grids/{gid}/split",
                {"line": line, "version": version},
                {},
            ),
            (
                "POST",
                f"{live_server}|/api/grids/{gid}/partition",
                {"k": 2, "roads": False, "dry_run": False, "base_version": version},
                {},
            ),
        )
        statuses = [status for status, _ in answers]
        assert statuses in ([200, 409], [409, 201]), answers
        loser = answers[statuses.index(409)][1]["error"]
        assert loser["code"] in ("stale_version", "grid_retired"), loser
        winner = answers[0 if statuses[0] == 200 else 1][1]
        winners.add(winner["change"]["kind"])
        # Either edit is undone the same way, and the grid is as it was for the next round.
        status, body = call(
            live_server, "POST", f"/api/grids/changes/{winner['change']['id']}/undo"
        )
        assert status == 200, body
        _, back = call(live_server, "GET", f"/api/grids/{gid}")
        assert back["properties"]["valid_to"] is None
        assert back["properties"]["household_count"] == grid["properties"]["household_count"]
    assert winners <= {"split", "divide"}


def _polygonal(g: Any) -> dict[str, Any]:
    """The polygonal part of an overlay's result, as GeoJSON (no stray lines or points)."""
    parts = [p for p in getattr(g, "geoms", [g]) if p.geom_type in ("Polygon", "MultiPolygon")]
    return mapping(unary_union(parts))


def _sibling_pair(base: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two sibling micro-grids that share an edge."""
    leaves = call(base, "GET", "/api/grids?level=4")[1]["features"]
    for a in leaves:
        for b in leaves:
            if a["id"] >= b["id"] or a["properties"]["parent_id"] != b["properties"]["parent_id"]:
                continue
            shared = shape(a["geometry"]).intersection(shape(b["geometry"]))
            if shared.length > 0.001:  # about 100 m of common edge
                return a, b
    raise AssertionError("no two sibling micro-grids share an edge")


def test_two_neighbours_growing_into_the_same_strip_one_wins_one_is_refused(
    live_server, restored
) -> None:  # type: ignore[no-untyped-def]
    """Neighbouring grids are edited by different people at once: the version check cannot
    catch it (each edits its own grid); the lock per parent must, or both would take the strip."""
    a, b = _sibling_pair(live_server)
    parent = a["properties"]["parent_id"]
    ga, gb = shape(a["geometry"]), shape(b["geometry"])
    strip = gb.intersection(ga.buffer(0.0002))  # about 20 m of b along the common edge
    for round_ in range(3):
        _, now_b = call(live_server, "GET", f"/api/grids/{b['id']}")
        smaller_b = shape(now_b["geometry"]).difference(strip)
        status, body = call(
            live_server,
            "PATCH",
            f"/api/grids/{b['id']}",
            {"geometry": _polygonal(smaller_b), "version": now_b["properties"]["version"]},
        )
        assert status == 200, body  # the strip is now a gap of the parent
        _, now_a = call(live_server, "GET", f"/api/grids/{a['id']}")
        _, now_b = call(live_server, "GET", f"/api/grids/{b['id']}")
        grown_a = shape(now_a["geometry"]).union(strip)
        grown_b = shape(now_b["geometry"]).union(strip)
        answers = race(
            (
                "PATCH",
                f"{live_server}|/api/grids/{a['id']}",
                {"geometry": _polygonal(grown_a), "version": now_a["properties"]["version"]},
                {},
            ),
            (
                "PATCH",
                f"{live_server}|/api/grids/{b['id']}",
                {"geometry": _polygonal(grown_b), "version": now_b["properties"]["version"]},
                {},
            ),
        )
        statuses = sorted(s for s, _ in answers)
        assert statuses == [200, 422], (round_, answers)
        refused = next(body for s, body in answers if s == 422)["error"]
        assert "overlap" in refused["message"].lower() or "重叠" in refused["message"], refused
        report = call(live_server, "GET", f"/api/grids/{parent}/integrity")[1]["summary"]
        assert report["overlap_count"] == 0, report
        # The strip belongs to exactly one of them now.
        _, after_a = call(live_server, "GET", f"/api/grids/{a['id']}")
        _, after_b = call(live_server, "GET", f"/api/grids/{b['id']}")
        in_a = shape(after_a["geometry"]).intersection(strip).area / strip.area
        in_b = shape(after_b["geometry"]).intersection(strip).area / strip.area
        assert sorted([round(in_a), round(in_b)]) == [0, 1], (in_a, in_b)
        # Both as they were, for the next round.
        if in_a > 0.5:
            status, body = call(
                live_server,
                "PATCH",
                f"/api/grids/{a['id']}",
                {"geometry": a["geometry"], "version": after_a["properties"]["version"]},
            )
            assert status == 200, body
            _, after_b = call(live_server, "GET", f"/api/grids/{b['id']}")
            status, body = call(
                live_server,
                "PATCH",
                f"/api/grids/{b['id']}",
                {"geometry": b["geometry"], "version": after_b["properties"]["version"]},
            )
            assert status == 200, body

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

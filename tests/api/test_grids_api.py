"""The JSON API: grids as GeoJSON, one grid with its notice board, households masked, clear errors."""

from __future__ import annotations

import pytest


def test_list_grids_by_level_parent_and_bbox(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/api/grids?level=2")
    assert res.status_code == 200
    body = res.get_json()
    assert body["type"] == "FeatureCollection"
    names = {f["properties"]["name"] for f in body["features"]}
    assert "爱辉社区" in names and "桃园村" in names
    assert all(f["properties"]["level"] == 2 for f in body["features"])
    street = next(
        f
        for f in client.get("/api/grids?level=1").get_json()["features"]
        if f["properties"]["code"] == "340188001"
    )
    children = client.get(f"/api/grids?parent={street['id']}").get_json()["features"]
    assert len(children) == 8
    # a bbox around the village finds only the village's grids
    village = client.get("/api/grids?level=2").get_json()["features"]
    bounds = client.get(
        f"/api/grids/{next(f['id'] for f in village if f['properties']['name'] == '桃园村')}"
    ).get_json()["properties"]["bounds"]
    inside = client.get("/api/grids?bbox=" + ",".join(map(str, bounds))).get_json()["features"]
    assert inside and all(f["properties"]["code"].startswith("340188101") for f in inside)


def test_one_grid_carries_its_notice_board(client) -> None:  # type: ignore[no-untyped-def]
    micro = client.get("/api/grids?level=4").get_json()["features"][0]
    res = client.get(f"/api/grids/{micro['id']}")
    assert res.status_code == 200
    props = res.get_json()["properties"]
    roles = {p["role"] for p in props["responsible"]}
    assert {"micro_chief", "worker_full"} <= roles
    assert all(
        p["phone"] and p["role_name"] for p in props["responsible"] if p["role"] != "party_member"
    )
    assert [a["level"] for a in props["ancestors"]] == [1, 2, 3]
    assert props["household_count"] > 0


def test_households_of_a_grid_are_masked(client) -> None:  # type: ignore[no-untyped-def]
    micro = client.get("/api/grids?level=4").get_json()["features"][0]
    body = client.get(f"/api/grids/{micro['id']}/households?limit=5").get_json()
    assert body["total"] == micro["properties"]["household_count"]
    assert len(body["features"]) == 5
    for f in body["features"]:
        assert "****" in f["properties"]["head_phone"]
        assert "*" in f["properties"]["head_name"]
        assert "tags" not in f["properties"]


def test_service_points_and_cameras(client) -> None:  # type: ignore[no-untyped-def]
    sp = client.get("/api/service-points").get_json()["features"]
    assert any(
        f["properties"]["kind"] == "centre" and f["properties"]["radius_m"] == 1000 for f in sp
    )
    cams = client.get("/api/cameras").get_json()["features"]
    assert len(cams) == 320 and all(f["properties"]["grid_id"] for f in cams)
    grid_id = cams[0]["properties"]["grid_id"]
    by_grid = client.get(f"/api/cameras?grid={grid_id}").get_json()["features"]
    assert by_grid and all(f["properties"]["grid_id"] == grid_id for f in by_grid)


@pytest.mark.parametrize(
    "url,status,param",
    [
        ("/api/grids/999999", 404, None),
        ("/api/grids/999999/households", 404, None),
        ("/api/grids?level=abc", 400, "level"),
        ("/api/grids?level=7", 400, "level"),
        ("/api/grids?bbox=1,2,3", 400, "bbox"),
        ("/api/grids?bbox=117,31,116,32", 400, "bbox"),
        ("/api/grids?bbox=117,95,118,96", 400, "bbox"),
        ("/api/cameras?grid=x", 400, "grid"),
        ("/api/nothing-here", 404, None),
    ],
)
def test_bad_requests_get_clear_json_errors(
    client, url: str, status: int, param: str | None
) -> None:  # type: ignore[no-untyped-def]
    res = client.get(url)
    assert res.status_code == status
    err = res.get_json()["error"]
    assert err["message"]
    if param:
        assert err["param"] == param and err["message"].startswith(param)

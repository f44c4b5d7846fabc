"""Inputs the schemathesis run answered with a server error; each must now be a 4xx JSON error."""

from __future__ import annotations

import pytest

SQUARE = [
    [[117.228, 31.814], [117.229, 31.814], [117.229, 31.815], [117.228, 31.815], [117.228, 31.814]]
]


def _error(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/grids/2147483648",
        "/api/grids/2147483648/households",
        "/api/grids/2147483648/integrity",
        "/api/grids/2147483648/history",
        "/api/override-areas/2147483648",
        "/api/cases/photos/2147483648",
    ],
)
def test_ids_beyond_a_database_integer_are_not_found(client, url) -> None:  # type: ignore[no-untyped-def]
    _error(client.get(url), 404)


def test_query_ids_beyond_a_database_integer_are_bad_parameters(client) -> None:  # type: ignore[no-untyped-def]
    err = _error(client.get("/api/grids/changes?grid=2147483648"), 400)
    assert err["param"] == "grid"


@pytest.mark.parametrize("ref", ["2200000000", "²"])
def test_case_refs_that_are_no_id_are_not_found(client, ref) -> None:  # type: ignore[no-untyped-def]
    _error(client.get(f"/api/cases/{ref}"), 404)
    _error(client.get(f"/api/public/cases/{ref}"), 404)


def test_unknown_geometry_type_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    feature = {
        "type": "Feature",
        "properties": {"parent_id": 3},
        "geometry": {"type": "AAA", "coordinates": SQUARE},
    }
    assert client.post("/api/grids?dry_run=1", json=feature).status_code in (400, 422)
    line = {
        "line": {"type": "AAA", "coordinates": [[117.227, 31.81], [117.23, 31.82]]},
        "version": 1,
    }
    assert client.post("/api/grids/4/split?dry_run=1", json=line).status_code in (400, 422)


def test_partition_names_must_be_a_list(client) -> None:  # type: ignore[no-untyped-def]
    err = _error(client.post("/api/grids/4/partition", json={"k": 2, "names": False}), 400)
    assert err["param"] == "names"


def test_accept_kind_must_be_text(client) -> None:  # type: ignore[no-untyped-def]
    err = _error(
        client.post("/api/coverage/accept", json={"lon": 117.2287, "lat": 31.8149, "kind": {}}), 400
    )
    assert err["param"] == "kind"


def test_work_periods_of_the_wrong_shape_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    err = _error(client.put("/api/case-settings", json={"work_periods": [[{}, "00:00"]]}), 400)
    assert err["param"] == "work_periods"


@pytest.mark.parametrize(
    "props",
    [
        [None, None],
        {"name": "菜市场", "category": "garbage", "department_id": "AAA"},
        {"name": "x", "category": "garbage", "department_id": {}},
        # Text given as a list, a number or false: refused, never stored as "[None, None]".
        {"name": [None, None], "category": "garbage", "department_code": "CG-AH"},
        {"name": "菜市场", "category": 7, "department_code": "CG-AH"},
        {"name": "菜市场", "category": "garbage", "department_code": "CG-AH", "worker_code": 0},
        {"name": "菜市场", "category": "garbage", "department_code": ["CG-AH"]},
    ],
)
def test_override_area_properties_are_checked(client, props) -> None:  # type: ignore[no-untyped-def]
    feature = {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "Polygon", "coordinates": SQUARE},
    }
    assert _error(client.post("/api/override-areas", json=feature), 400)["param"].startswith(
        "properties"
    )


@pytest.mark.parametrize(
    "geometry",
    [{"type": "Polygon", "coordinates": {}}, {"type": "MultiPolygon", "coordinates": [{}]}],
)
def test_override_area_coordinates_that_are_objects_are_refused(client, geometry) -> None:  # type: ignore[no-untyped-def]
    feature = {
        "type": "Feature",
        "properties": {"name": "x", "category": "garbage", "department_code": "CG-AH"},
        "geometry": geometry,
    }
    _error(client.post("/api/override-areas", json=feature), 422)


def test_open311_fields_must_be_single_values(client) -> None:  # type: ignore[no-untyped-def]
    body = {
        "service_code": "garbage",
        "lat": 31.8149,
        "long": 117.2287,
        "description": [None, None],
    }
    response = client.post("/open311/v2/requests.json", json=body)
    assert response.status_code == 400
    assert "description" in response.get_json()[0]["description"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "FeatureCollection", "features": [1]},
        {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": [1, 2]}]},
        {"type": "FeatureCollection", "features": {"a": 1}},
    ],
)
def test_batch_locate_refuses_features_that_are_not_objects(client, body) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/api/locate/batch", json=body)
    assert res.status_code == 400 and "feature" in res.get_json()["error"]["message"]


@pytest.mark.parametrize("url", ["/api/grids/merge", "/api/grids"])
def test_grid_ids_in_edit_bodies_beyond_a_database_integer_are_bad_parameters(client, url) -> None:  # type: ignore[no-untyped-def]
    body = (
        {"ids": [2**40, 1], "versions": [1, 1]}
        if url.endswith("merge")
        else {"type": "Feature", "geometry": None, "properties": {"parent_id": 2**40}}
    )
    res = client.post(url, json=body)
    assert res.status_code in (400, 404), res.get_json()


def test_audit_filters_with_nul_are_bad_parameters(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/audit/export.csv?username=a%00b").status_code == 400


@pytest.mark.parametrize(
    "field", ["camera", "event_type", "time", "description", "snapshot_base64"]
)
def test_camera_event_fields_must_be_single_values(client, field) -> None:  # type: ignore[no-untyped-def]
    body = {"camera": "CAM-AH-0001", "event_type": "street_vending", field: ["a", "b"]}
    res = client.post("/api/camera-events", json=body)
    assert res.status_code == 400 and res.get_json()["error"]["param"] == field

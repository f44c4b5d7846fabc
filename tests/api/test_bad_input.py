"""Bad input answers a 4xx that names the problem, never a 500: NUL characters, deep JSON,
non-finite numbers, unknown and huge ids, wrongly typed fields, TRACE, and a database that is down."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app import create_app
from tests.api.case_helpers import CENTRE, POINT, act, walk_to


def _param(response, status: int = 400) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    error = response.get_json()["error"]
    assert error["message"]
    return error.get("param", "")


@pytest.mark.parametrize(
    "url, param",
    [
        ("/api/cases?category=a%00b", "category"),
        ("/api/cases?code=%00", "code"),
        ("/api/grids?level=1&x%00=1", "x\\0"),
        ("/open311/v2/requests.json?service_code=a%00", "service_code"),
    ],
)
def test_nul_in_a_query_parameter_is_refused_naming_it(client, url, param) -> None:  # type: ignore[no-untyped-def]
    res = client.get(url)
    assert res.status_code == 400, res.get_data(as_text=True)[:300]
    body = res.get_json()
    if isinstance(body, list):  # GeoReport's error shape
        assert body[0]["description"].startswith(param)
    else:
        assert body["error"]["param"] == param


def test_a_form_report_with_nul_is_refused_and_nothing_is_half_stored(
    anon_client, db_session
) -> None:  # type: ignore[no-untyped-def]
    before = db_session.scalar(text("SELECT count(*) FROM audit_log"))
    form = {
        "x": str(POINT[0]),
        "y": str(POINT[1]),
        "category": "streetlight",
        "description": "灯\x00坏",
    }
    assert _param(anon_client.post("/api/cases", data=form)) == "description"
    assert db_session.scalar(text("SELECT count(*) FROM audit_log")) == before


def test_nul_in_a_json_string_or_key_is_refused_naming_it(anon_client) -> None:  # type: ignore[no-untyped-def]
    body = {"x": POINT[0], "y": POINT[1], "category": "streetlight", "description": "灯\x00坏"}
    assert _param(anon_client.post("/api/cases", json=body)) == "description"
    nested = {"username": "a", "password": "b", "actor": {"name": "x\x00"}}
    assert _param(anon_client.post("/api/auth/login", json=nested)) == "actor.name"


@pytest.mark.parametrize(
    "url", ["/api/cases", "/api/auth/login", "/open311/v2/requests.json", "/api/locate/batch"]
)
def test_deeply_nested_json_is_refused_on_anonymous_endpoints(anon_client, url) -> None:  # type: ignore[no-untyped-def]
    deep = "[" * 100_000 + "]" * 100_000
    res = anon_client.post(url, data=deep, content_type="application/json")
    assert res.status_code == 400, res.get_data(as_text=True)[:300]
    assert "nested" in res.get_data(as_text=True)
    moderately = '{"a":' * 40 + "1" + "}" * 40
    res = anon_client.post(url, data=moderately, content_type="application/json")
    assert (
        res.status_code in (400, 401)
        and "nested" in res.get_data(as_text=True)
        or res.status_code == 401
    )


def test_geojson_bodies_stay_within_the_depth_bound(client) -> None:  # type: ignore[no-untyped-def]
    multi = {
        "type": "MultiPolygon",
        "coordinates": [[[[117.2, 31.8], [117.3, 31.8], [117.3, 31.9], [117.2, 31.8]]]],
    }
    body = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": multi}],
    }
    res = client.post("/api/locate/batch", json=body)
    assert "nested" not in res.get_data(as_text=True)


@pytest.mark.parametrize("days", ["NaN", "nan", "Inf", "-inf", "1e308", "1e9"])
def test_calendar_deadline_refuses_non_finite_and_huge_days(client, days) -> None:  # type: ignore[no-untyped-def]
    assert _param(client.get(f"/api/calendar/deadline?days={days}")) == "days"
    assert _param(client.get(f"/api/calendar/deadline?hours={days}")) == "hours"


def test_transfer_to_an_unknown_or_huge_grid_or_worker_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "dispatched")
    worker = case["assignee"]["id"]
    huge = act(client, case["id"], "transfer", CENTRE, note="转", worker_id=worker, grid_id=2**40)
    assert _param(huge) == "grid_id"
    huge = act(client, case["id"], "transfer", CENTRE, note="转", worker_id=2**63)
    assert _param(huge) == "worker_id"
    unknown = act(
        client, case["id"], "transfer", CENTRE, note="转", worker_id=worker, grid_id=2_000_000_000
    )
    assert unknown.status_code == 422 and "grid" in unknown.get_json()["error"]["message"]
    nan = act(client, case["id"], "transfer", CENTRE, note="转", within_m="NaN")
    assert _param(nan) == "within_m"
    typed = act(client, case["id"], "transfer", CENTRE, note="转", crs={"a": 1})
    assert _param(typed) == "crs"


@pytest.mark.parametrize("value", [True, False, 12, None])
def test_open311_service_code_must_be_text(anon_client, value) -> None:  # type: ignore[no-untyped-def]
    body = {"service_code": value, "lat": POINT[1], "long": POINT[0]}
    res = anon_client.post("/open311/v2/requests.json", json=body)
    assert res.status_code == 400, res.get_data(as_text=True)
    assert "service_code" in res.get_json()[0]["description"]


@pytest.mark.parametrize("value", ["NaN", "inf"])
def test_open311_coordinates_must_be_finite(anon_client, value) -> None:  # type: ignore[no-untyped-def]
    body = {"service_code": "streetlight", "lat": value, "long": POINT[0]}
    res = anon_client.post("/open311/v2/requests.json", json=body)
    assert res.status_code == 400 and "lat" in res.get_json()[0]["description"]


@pytest.mark.parametrize(
    "url", ["/api/cases", "/api/grids/4", "/login", "/open311/v2/services.json"]
)
def test_an_unsupported_method_answers_405_with_allow(client, url) -> None:  # type: ignore[no-untyped-def]
    res = client.open(url, method="TRACE")
    assert res.status_code == 405
    allowed = {m.strip() for m in res.headers["Allow"].split(",")}
    assert "GET" in allowed and "TRACE" not in allowed


def test_the_database_down_answers_503_with_retry_after(admin_auth) -> None:  # type: ignore[no-untyped-def]
    # Nothing listens on port 1: every connection is refused at once.
    dead = create_app(
        {"DATABASE_URL": "postgresql+psycopg://nobody:x@127.0.0.1:1/none", "TESTING": True}
    )
    client = dead.test_client()
    for res in (
        client.get(
            "/api/grids?level=1", headers={"Authorization": f"Bearer {admin_auth['token']}"}
        ),
        client.get("/open311/v2/services.json"),
        client.post("/api/auth/login", json={"username": "someone", "password": "Whatever-12"}),
    ):
        assert res.status_code == 503, res.get_data(as_text=True)[:300]
        assert int(res.headers["Retry-After"]) > 0
        assert res.get_json()["error"]["code"] == "service_unavailable"
    dead.extensions["gridgov_db"].dispose()


@pytest.mark.parametrize(
    "method, url",
    [
        ("DELETE", "/api/override-areas/2217373944792126976"),
        ("PUT", "/api/override-areas/99999999999"),
        ("PATCH", "/api/grids/2147483648"),
        ("DELETE", "/api/grids/2147483648"),
    ],
)
def test_ids_past_the_largest_answer_404_for_every_method(client, method, url) -> None:  # type: ignore[no-untyped-def]
    res = client.open(
        url, method=method, json={"type": "Feature", "properties": {}, "geometry": None}
    )
    assert res.status_code == 404, (res.status_code, res.get_data(as_text=True)[:200])


def test_a_form_part_without_a_name_is_no_server_error(client) -> None:  # type: ignore[no-untyped-def]
    body = b'--b\r\nContent-Disposition: form-data; name="%0D"\r\n\r\nnull\r\n--b--\r\n'
    res = client.post(
        "/api/import/grids", data=body, content_type="multipart/form-data; boundary=b"
    )
    assert res.status_code < 500


def test_case_list_filters_are_checked(client) -> None:  # type: ignore[no-untyped-def]
    assert _param(client.get("/api/cases?source=AAA")) == "source"
    assert _param(client.get("/api/cases?status=open,nope")) == "status"
    assert _param(client.get("/api/cases?format=AAA")) == "format"


@pytest.mark.parametrize(
    "field, value",
    [("photo_base64", {}), ("idempotency_key", 5), ("description", ["a"]), ("category", True)],
)
def test_report_text_fields_must_be_text(anon_client, field, value) -> None:  # type: ignore[no-untyped-def]
    body = {"x": POINT[0], "y": POINT[1], "category": "streetlight", field: value}
    assert _param(anon_client.post("/api/cases", json=body)) == field

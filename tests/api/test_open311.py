"""Open311 GeoReport v2: create through Open311, read back through Open311 and the case API."""

from __future__ import annotations

import re

from tests.api.case_helpers import CENTRE, POINT, act, handler_of, ok


def test_services_list_the_categories(client) -> None:  # type: ignore[no-untyped-def]
    services = client.get("/open311/v2/services.json").get_json()
    codes = {s["service_code"] for s in services}
    assert {"streetlight", "road_occupation", "noise"} <= codes
    lamp = next(s for s in services if s["service_code"] == "streetlight")
    assert lamp["service_name"] == "路灯损坏" and lamp["metadata"] is False
    assert lamp["type"] == "realtime" and lamp["group"] == "安和街道物业办"


def test_round_trip(client) -> None:  # type: ignore[no-untyped-def]
    form = {
        "service_code": "streetlight",
        "lat": str(POINT[1]),
        "long": str(POINT[0]),
        "address_string": "馨苑小区1栋东侧",
        "description": "路灯整晚不亮",
        "phone": "13800001111",
        "first_name": "明",
        "last_name": "李",
    }
    res = client.post("/open311/v2/requests.json", data=form)
    assert res.status_code == 201, res.get_json()
    answer = res.get_json()
    assert len(answer) == 1 and re.fullmatch(
        r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", answer[0]["service_request_id"]
    )
    assert answer[0]["secret"]
    code = answer[0]["service_request_id"]

    one = client.get(f"/open311/v2/requests/{code}.json").get_json()
    assert len(one) == 1
    req = one[0]
    assert req["service_request_id"] == code and req["status"] == "open"
    assert req["service_code"] == "streetlight" and req["description"] == "路灯整晚不亮"
    assert abs(req["lat"] - POINT[1]) < 1e-7 and abs(req["long"] - POINT[0]) < 1e-7
    assert req["address"] == "馨苑小区1栋东侧" and req["expected_datetime"]
    assert req["status_notes"].startswith("已派单")

    # The same request through the platform's own API (staff use the internal code).
    listed = client.get("/api/cases?category=streetlight&limit=5000").get_json()["items"]
    internal = next(c for c in listed if c["public_code"] == code)
    assert internal["code"].startswith("SJ") and internal["code"] != code
    code_internal = internal["code"]
    case = client.get(f"/api/cases/{code_internal}").get_json()
    assert case["source"] == "resident" and case["status"] == "dispatched"
    assert case["reporter_contact"] == "138****1111" and case["reporter_name"] == "李**"
    assert case["reported"]["crs"] == "wgs84" and case["address"] == "馨苑小区1栋东侧"

    # Work done on the platform shows in Open311.
    ok(act(client, code_internal, "accept", handler_of(case)))
    ok(act(client, code_internal, "resolve", handler_of(case), note="已更换灯具"))
    req = client.get(f"/open311/v2/requests/{code}.json").get_json()[0]
    assert req["status"] == "open" and req["status_notes"] == "已反馈：已更换灯具"
    ok(act(client, code_internal, "verify", CENTRE))
    ok(act(client, code_internal, "rate", {"role": "resident"}, satisfaction=4))
    req = client.get(f"/open311/v2/requests/{code}.json").get_json()[0]
    assert req["status"] == "closed"
    listed = client.get("/open311/v2/requests.json?status=closed&service_code=streetlight")
    assert code in [r["service_request_id"] for r in listed.get_json()]
    open_ = client.get("/open311/v2/requests.json?status=open").get_json()
    assert code not in [r["service_request_id"] for r in open_]
    both = client.get(f"/open311/v2/requests.json?service_request_id={code},{code}").get_json()
    assert {r["service_request_id"] for r in both} == {code}


def test_open311_errors_use_the_georeport_shape(client) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/open311/v2/requests.json", data={"service_code": "streetlight"})
    assert res.status_code == 400
    body = res.get_json()
    assert isinstance(body, list) and body[0]["code"] == 400 and "lat" in body[0]["description"]
    res = client.post(
        "/open311/v2/requests.json", data={"service_code": "ufo", "lat": "31.8", "long": "117.2"}
    )
    assert res.status_code == 422
    assert client.get("/open311/v2/requests/SJ0.json").status_code == 404
    assert client.get("/open311/v2/requests.json?status=maybe").status_code == 400


def test_idempotency_header_is_honoured(client) -> None:  # type: ignore[no-untyped-def]
    form = {"service_code": "garbage", "lat": str(POINT[1]), "long": str(POINT[0])}
    first = client.post("/open311/v2/requests.json", data=form, headers={"Idempotency-Key": "o-1"})
    again = client.post("/open311/v2/requests.json", data=form, headers={"Idempotency-Key": "o-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    # The retry names the same request; the secret is given only once (only its hash is kept).
    assert first.get_json()[0]["secret"] and again.get_json()[0]["secret"] is None
    assert {**first.get_json()[0], "secret": None} == again.get_json()[0]


def test_media_posted_through_open311_is_served_back(client) -> None:  # type: ignore[no-untyped-def]
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (0, 128, 0)).save(buf, format="JPEG")
    form = {
        "service_code": "garbage",
        "lat": str(POINT[1]),
        "long": str(POINT[0]),
        "media": (io.BytesIO(buf.getvalue()), "bin.jpg"),
    }
    res = client.post("/open311/v2/requests.json", data=form, content_type="multipart/form-data")
    assert res.status_code == 201, res.get_json()
    code = res.get_json()[0]["service_request_id"]
    req = client.get(f"/open311/v2/requests/{code}.json").get_json()[0]
    assert req["media_url"] and req["media_url"].startswith("http")
    photo = client.get(req["media_url"].split("localhost", 1)[-1])
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(photo.data)).size == (32, 24)

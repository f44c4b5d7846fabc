"""What a resident can do without an account, and nothing more (issue #12, section 4).

Public endpoints take only the unguessable public code, rating needs the reporter's proof and is
limited per address, public answers carry no personal data, and nobody reports through a
channel it does not own.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import public_cases
from tests.api.case_helpers import CENTRE, POINT, act, handler_of, ok
from tests.auth.conftest import bearer

REPORT = {
    "x": POINT[0],
    "y": POINT[1],
    "category": "streetlight",
    "description": "楼下路灯坏了",
    "reporter_name": "欧阳明华",
    "reporter_contact": "13912340000",
}
CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$")


def _report(anon_client, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    res = anon_client.post("/api/cases", json={**REPORT, **fields})
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def _stored(db_session: Session, public_code: str) -> Any:
    return db_session.execute(
        text(
            """SELECT c.id, c.code, c.reporter_name, c.reporter_contact, c.reporter_secret_hash,
                      c.routing, w.name AS worker_name, w.phone AS worker_phone
               FROM "case" c LEFT JOIN worker w ON w.id = c.assignee_id
               WHERE c.public_code = :p"""
        ),
        {"p": public_code.replace("-", "")},
    ).one()


def _personal_values(row: Any) -> list[str]:
    """Every name and phone the case carries: the reporter's and the routing chain's."""
    values = [row.reporter_name, row.reporter_contact, row.worker_name, row.worker_phone]
    routing = row.routing or {}
    for person in [routing.get("owner") or {}, *(routing.get("fallback") or [])]:
        if person.get("kind") == "worker":
            values += [person.get("name"), person.get("phone")]
    return [v for v in values if v]


def _to_verified(client, db_session, public_code: str) -> None:  # type: ignore[no-untyped-def]
    row = _stored(db_session, public_code)
    case = client.get(f"/api/cases/{row.id}").get_json()
    ok(act(client, row.id, "accept", handler_of(case)))
    ok(act(client, row.id, "resolve", handler_of(case), note="已修好"))
    ok(act(client, row.id, "verify", CENTRE))


# ---------------------------------------------------------------- the code


def test_public_codes_are_long_random_and_checked(db_session) -> None:  # type: ignore[no-untyped-def]
    codes = db_session.scalars(text('SELECT public_code FROM "case"')).all()
    more = db_session.scalars(text("SELECT case_public_code() FROM generate_series(1, 500)")).all()
    for code in [*codes, *more]:
        # Made by the database, checked by the same rule in Python.
        assert public_cases.normalize(code) == code, code
    assert len(set(more)) == len(more)
    assert len(public_cases.ALPHABET) ** 15 >= 2**75  # 75 random bits
    code = public_cases.display(more[0])
    assert CODE_SHAPE.match(code)
    # Typed the way people type it: lower case, spaces, O for 0, I or L for 1.
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert public_cases.normalize(typed) == more[0]
    # Any one character changed is caught by the check character.
    for i in range(16):
        for ch in public_cases.ALPHABET:
            if ch != more[0][i]:
                assert public_cases.normalize(more[0][:i] + ch + more[0][i + 1 :]) is None


def test_existing_cases_got_a_public_code(db_session) -> None:  # type: ignore[no-untyped-def]
    missing = db_session.scalar(text('SELECT count(*) FROM "case" WHERE public_code IS NULL'))
    assert missing == 0
    unique = db_session.scalar(
        text(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'case' "
            "AND indexdef LIKE 'CREATE UNIQUE INDEX%(public_code)'"
        )
    )
    assert unique == 1


# ---------------------------------------------------------------- the report's answer


def test_anonymous_report_answer_gives_only_code_status_secret_and_grid(  # type: ignore[no-untyped-def]
    anon_client, db_session
) -> None:
    # An open case of the same category nearby, which the old answer listed as a duplicate.
    other = _report(anon_client, description="另一位居民：张三 13800009999 的门口")
    answer = _report(anon_client)
    assert set(answer) == {"created", "code", "status", "status_name", "secret", "responsible"}
    assert CODE_SHAPE.match(answer["code"]) and answer["status"] == "dispatched"
    assert answer["secret"] and len(answer["secret"]) >= 20
    row = _stored(db_session, answer["code"])
    assert row.reporter_secret_hash == public_cases.secret_hash(answer["secret"])
    assert answer["secret"] not in str(row)  # only the hash is stored
    blob = json.dumps(answer, ensure_ascii=False)
    assert row.code not in blob  # no internal code (and by the keys above, no id)
    for value in _personal_values(row):
        assert value not in blob, value
    assert other["code"] not in blob and "张三" not in blob and "13800009999" not in blob
    responsible = answer["responsible"]
    assert responsible["grid"] == row.routing["grid"]["name"]
    assert responsible["name"] and responsible["name"].endswith("*")  # masked


def test_staff_still_get_the_routing(client) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/api/cases", json={**REPORT, "source": "hotline"})
    assert res.status_code == 201
    answer = res.get_json()
    assert answer["routing"]["owner"]["name"] and answer["secret"]
    assert CODE_SHAPE.match(answer["case"]["public_code"])


# ---------------------------------------------------------------- enumeration


def test_ids_and_internal_codes_are_refused_on_every_public_endpoint(  # type: ignore[no-untyped-def]
    anon_client, db_session
) -> None:
    answer = _report(anon_client)
    row = _stored(db_session, answer["code"])
    mistyped = answer["code"][:-1] + ("A" if answer["code"][-1] != "A" else "B")
    bodies = []
    for n, ref in enumerate((str(row.id), row.code, mistyped, "1", "SJ0", "0000-0000-0000-0000")):
        address = {"REMOTE_ADDR": f"10.9.9.{n}"}  # within the limit on failed tries
        for method, url in (
            ("GET", f"/api/public/cases/{ref}"),
            ("POST", f"/api/public/cases/{ref}/rate"),
            ("GET", f"/open311/v2/requests/{ref}.json"),
            ("GET", f"/open311/v2/requests.json?service_request_id={ref}"),
        ):
            res = anon_client.open(
                url,
                method=method,
                json={"satisfaction": 1, "secret": answer["secret"]} if method == "POST" else None,
                environ_base=address,
            )
            assert res.status_code == 404, (url, res.get_json())
            body = res.get_json()
            bodies.append(
                json.dumps(body.get("error", body), sort_keys=True)
                if isinstance(body, dict)
                else json.dumps(body)
            )
            assert len(ref) < 5 or ref not in bodies[-1]
    # One answer for all of them: nothing tells a wrong id from an unknown code.
    assert len(set(bodies)) <= 2  # the JSON API's shape and Open311's
    # The code itself works everywhere, written any way a resident types it.
    for typed in (answer["code"], answer["code"].lower(), answer["code"].replace("-", "")):
        assert anon_client.get(f"/api/public/cases/{typed}").status_code == 200
    assert anon_client.get(f"/open311/v2/requests/{answer['code']}.json").status_code == 200


def test_open311_list_names_no_other_cases_to_anonymous_callers(anon_client) -> None:  # type: ignore[no-untyped-def]
    mine = _report(anon_client)
    _report(anon_client, description="别人的事件")
    res = anon_client.get("/open311/v2/requests.json")
    assert res.status_code == 403
    res = anon_client.get("/open311/v2/requests.json?status=open&service_code=streetlight")
    assert res.status_code == 403
    res = anon_client.get(f"/open311/v2/requests.json?service_request_id={mine['code']}")
    assert res.status_code == 200
    assert [r["service_request_id"] for r in res.get_json()] == [mine["code"]]


def test_open311_report_answer_names_no_other_case(anon_client) -> None:  # type: ignore[no-untyped-def]
    form = {"service_code": "streetlight", "lat": str(POINT[1]), "long": str(POINT[0])}
    first = anon_client.post("/open311/v2/requests.json", data=form).get_json()[0]
    second = anon_client.post("/open311/v2/requests.json", data=form).get_json()[0]
    assert first["service_request_id"] not in json.dumps(second, ensure_ascii=False)
    assert second["secret"] and CODE_SHAPE.match(second["service_request_id"])


# ---------------------------------------------------------------- personal data


def test_public_answers_carry_no_personal_data(client, anon_client, db_session) -> None:  # type: ignore[no-untyped-def]
    # The reporter quotes himself, and the worker's note quotes the worker.
    answer = _report(anon_client, description="我是欧阳明华，电话13912340000，路灯坏了")
    row = _stored(db_session, answer["code"])
    case = client.get(f"/api/cases/{row.id}").get_json()
    ok(act(client, row.id, "accept", handler_of(case)))
    note = f"{row.worker_name}已处理，有事打{row.worker_phone}"
    ok(act(client, row.id, "resolve", handler_of(case), note=note))
    ok(act(client, row.id, "verify", CENTRE))
    values = _personal_values(row)
    assert row.worker_name and row.worker_phone and len(values) >= 4
    track = anon_client.get(f"/api/public/cases/{answer['code']}")
    georeport = anon_client.get(f"/open311/v2/requests/{answer['code']}.json")
    listed = anon_client.get(f"/open311/v2/requests.json?service_request_id={answer['code']}")
    for res in (track, georeport, listed):
        assert res.status_code == 200
        blob = res.get_data(as_text=True)
        blob_text = json.dumps(res.get_json(), ensure_ascii=False)
        for value in values:
            assert value not in blob and value not in blob_text, value
        assert row.code not in blob_text
        assert "路灯坏了" in blob_text  # the description itself is there, its personal data not
    assert "已处理" in json.dumps(track.get_json(), ensure_ascii=False)
    page = anon_client.get(f"/cases/track?code={answer['code']}")
    assert page.status_code == 200
    for value in values:
        assert value not in page.get_data(as_text=True)


# ---------------------------------------------------------------- rating


def test_rating_needs_the_reporters_secret_or_phone(client, anon_client, db_session) -> None:  # type: ignore[no-untyped-def]
    answer = _report(anon_client)
    _to_verified(client, db_session, answer["code"])
    url = f"/api/public/cases/{answer['code']}/rate"
    for proof in (
        {},
        {"secret": "x" * 24},
        {"phone": "13912349999"},
        {"secret": ""},
        {"phone": ""},
        {"secret": answer["secret"][:-1]},
    ):
        res = anon_client.post(url, json={"satisfaction": 1, **proof})
        assert res.status_code == 403, (proof, res.get_json())
        assert res.get_json()["error"]["code"] == "reporter_proof_required"
    assert _stored(db_session, answer["code"]).routing  # still verified, unrated
    assert anon_client.get(url.rsplit("/", 1)[0]).get_json()["status"] == "verified"
    res = anon_client.post(
        url, json={"satisfaction": 4, "solved": True}, headers={"X-Case-Secret": answer["secret"]}
    )
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["status"] == "closed" and res.get_json()["satisfaction"] == 4
    # The secret never reaches the audit log.
    logged = db_session.scalars(text("SELECT detail::text FROM audit_log WHERE detail IS NOT NULL"))
    assert not any(answer["secret"] in d for d in logged)


def test_the_reporters_phone_proves_the_report(client, anon_client, db_session) -> None:  # type: ignore[no-untyped-def]
    answer = _report(anon_client)
    _to_verified(client, db_session, answer["code"])
    res = anon_client.post(
        f"/api/public/cases/{answer['code']}/rate",
        json={"satisfaction": 5, "phone": "+86 139-1234-0000", "secret": "wrong"},
    )
    assert res.status_code == 200, res.get_json()


def test_failed_tries_are_limited_per_address(client, anon_client, db_session, app) -> None:  # type: ignore[no-untyped-def]
    answer = _report(anon_client)
    _to_verified(client, db_session, answer["code"])
    url = f"/api/public/cases/{answer['code']}/rate"
    saved = dict(app.config)
    app.config["PUBLIC_CASE_LIMIT"] = 3
    try:
        for _ in range(2):
            assert anon_client.post(url, json={"satisfaction": 1, "phone": "1"}).status_code == 403
        # Successful reads give their try back.
        for _ in range(3):
            assert anon_client.get(f"/api/public/cases/{answer['code']}").status_code == 200
        assert anon_client.get("/api/public/cases/0000-0000-0000-0000").status_code == 404
        # Three failures: the address waits, whatever it sends, the right secret included.
        res = anon_client.post(url, json={"satisfaction": 1, "secret": answer["secret"]})
        assert res.status_code == 429 and res.get_json()["error"]["retry_after"] > 0
        assert anon_client.get(f"/open311/v2/requests/{answer['code']}.json").status_code == 429
        # Another address is not held back, and rates with the secret.
        other = {"REMOTE_ADDR": "10.1.2.3"}
        res = anon_client.post(
            url, json={"satisfaction": 5, "secret": answer["secret"]}, environ_base=other
        )
        assert res.status_code == 200, res.get_json()
    finally:
        app.config.clear()
        app.config.update(saved)


def test_concurrent_tries_never_pass_the_limit(app) -> None:  # type: ignore[no-untyped-def]
    engine = app.extensions["gridgov_db"].engine
    limits = {"PUBLIC_CASE_LIMIT": 5, "PUBLIC_CASE_WINDOW_MINUTES": 10}
    client_id = "test-burst-client"
    passed: list[bool] = []
    barrier = threading.Barrier(16)

    def one() -> None:
        with Session(engine) as s:
            barrier.wait()
            try:
                public_cases.reserve(s, client_id, limits)
                passed.append(True)
            except public_cases.TooManyTries:
                passed.append(False)
            s.commit()

    threads = [threading.Thread(target=one) for _ in range(16)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert passed.count(True) == 5 and passed.count(False) == 11
    finally:
        with Session(engine) as s:
            s.execute(text("DELETE FROM public_rate_limit WHERE client = :c"), {"c": client_id})
            s.commit()


# ---------------------------------------------------------------- channels


@pytest.mark.parametrize(
    ("role", "source", "status"),
    [
        (None, "camera", 403),
        (None, "hotline", 403),
        (None, "patrol", 403),
        (None, "resident", 201),
        ("worker", "camera", 403),
        ("worker", "hotline", 403),
        ("worker", "superior", 403),
        ("worker", "patrol", 201),
        ("department", "patrol", 403),
        ("centre", "camera", 403),
        ("centre", "hotline", 201),
        ("centre", "superior", 201),
        ("admin", "camera", 403),
        ("camera_feed", "camera", 403),
    ],
)
def test_a_caller_reports_only_through_its_own_channels(  # type: ignore[no-untyped-def]
    anon_client, accounts, role, source, status
) -> None:
    headers = bearer(accounts[role]) if role else {}
    res = anon_client.post("/api/cases", json={**REPORT, "source": source}, headers=headers)
    assert res.status_code == status, res.get_json()
    if status == 403:
        message = res.get_json()["error"]["message"]
        assert source in message or "camera" in message


def test_photos_are_read_by_the_public_code_only(anon_client, db_session) -> None:  # type: ignore[no-untyped-def]
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 0, 0)).save(buf, format="JPEG")
    photo = base64.b64encode(buf.getvalue()).decode()
    mine = _report(anon_client, photo_base64=photo)
    other = _report(anon_client, photo_base64=photo, description="别人的照片")
    view = anon_client.get(f"/api/public/cases/{mine['code']}").get_json()
    assert len(view["photos"]) == 1 and view["photos"][0].startswith(
        f"/api/public/cases/{mine['code']}/"
    )
    res = anon_client.get(view["photos"][0])
    assert res.status_code == 200 and res.mimetype == "image/jpeg"
    photo_id = view["photos"][0].rsplit("/", 1)[-1]
    # The same photo under another case's code, or the staff address, is not there.
    assert (
        anon_client.get(f"/api/public/cases/{other['code']}/photos/{photo_id}").status_code == 404
    )
    assert anon_client.get(f"/api/cases/photos/{photo_id}").status_code == 401
    georeport = anon_client.get(f"/open311/v2/requests/{mine['code']}.json").get_json()[0]
    assert georeport["media_url"].endswith(view["photos"][0])

"""Uploads cannot exhaust the server: photos per request and per case are capped, images are
decoded within a pixel budget (JPEGs scaled down while decoding), decodes per process are
bounded, anonymous uploads are limited per address — and phone photos still work.

The burst test runs the app under gunicorn in its own process and reads that worker's peak
resident memory (VmHWM) while oversized PNGs and 48 Mpx JPEGs arrive at once."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageDraw
from sqlalchemy import text

from app import create_app
from app.db import get_db, transaction
from app.services import photos
from tests.api.case_helpers import POINT, report
from tests.cleanup import delete_cases
from tests.own_server import own_server

#: The peak resident memory one gunicorn worker may reach during the burst (MiB). Before the
#: limits, eight of the 7,700 × 7,700 PNGs alone took it past 2,500 MiB.
RSS_BUDGET_MB = 600


def _jpeg(width: int, height: int, quality: int = 80) -> bytes:
    img = Image.new("RGB", (width, height), (90, 140, 200))
    draw = ImageDraw.Draw(img)
    for x in range(0, width, max(1, width // 40)):
        draw.line([(x, 0), (width - x, height)], fill=(250, 200, 40), width=9)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    buf = io.BytesIO()
    Image.new("RGB", (7700, 7700), (255, 255, 255)).save(buf, format="PNG", optimize=True)
    return {
        "bomb_png": buf.getvalue(),
        "jpeg_12mp": _jpeg(4000, 3000),
        "jpeg_48mp": _jpeg(8000, 6000),
        "small": _jpeg(64, 48),
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _body(**fields):  # type: ignore[no-untyped-def]
    return {
        "x": POINT[0],
        "y": POINT[1],
        "category": "streetlight",
        "description": "照片测试",
        **fields,
    }


def test_the_oversized_png_is_refused_from_its_header(client, images) -> None:  # type: ignore[no-untyped-def]
    assert len(images["bomb_png"]) < 400_000  # a small file of 59 million pixels
    res = client.post("/api/cases", json=_body(photo_base64=_b64(images["bomb_png"])))
    assert res.status_code == 422, res.get_json()
    assert "7700×7700" in res.get_json()["error"]["message"]


@pytest.mark.parametrize("name, size", [("jpeg_12mp", (4000, 3000)), ("jpeg_48mp", (8000, 6000))])
def test_phone_photos_are_accepted_and_stored_at_most_2560_px(
    client, db_session, images, name, size
) -> None:  # type: ignore[no-untyped-def]
    assert Image.open(io.BytesIO(images[name])).size == size
    res = client.post(
        "/api/cases",
        data={**_body(), "photo": (io.BytesIO(images[name]), "phone.jpg")},
        content_type="multipart/form-data",
    )
    assert res.status_code == 201, res.get_json()
    w, h = db_session.execute(
        text("SELECT width, height FROM case_photo WHERE case_id = :id"),
        {"id": res.get_json()["case"]["id"]},
    ).one()
    assert max(w, h) == 2560 and abs(w / h - 4 / 3) < 0.01


def test_photos_per_request_are_capped(client, images) -> None:  # type: ignore[no-untyped-def]
    files = [
        (io.BytesIO(images["small"]), f"p{i}.jpg") for i in range(photos.MAX_PHOTOS_PER_REQUEST + 1)
    ]
    res = client.post(
        "/api/cases", data={**_body(), "photo": files}, content_type="multipart/form-data"
    )
    assert res.status_code == 422 and "at most 6 photos" in res.get_json()["error"]["message"]
    files = [
        (io.BytesIO(images["small"]), f"p{i}.jpg") for i in range(photos.MAX_PHOTOS_PER_REQUEST)
    ]
    res = client.post(
        "/api/cases", data={**_body(), "photo": files}, content_type="multipart/form-data"
    )
    assert res.status_code == 201, res.get_json()


def test_photos_per_case_are_capped(client, db_session, images) -> None:  # type: ignore[no-untyped-def]
    case = report(client)["case"]
    db_session.execute(
        text(
            "INSERT INTO case_photo (case_id, content, mime, width, height) "
            "SELECT :id, :c, 'image/jpeg', 64, 48 FROM generate_series(1, 18)"
        ),
        {"id": case["id"], "c": images["small"]},
    )

    def accept_with(n: int):  # type: ignore[no-untyped-def]
        return client.post(
            f"/api/cases/{case['id']}/actions/accept",
            data={
                "actor_role": "worker",
                "actor_worker_id": str(case["assignee"]["id"]),
                "photo": [(io.BytesIO(images["small"]), f"p{i}.jpg") for i in range(n)],
            },
            content_type="multipart/form-data",
        )

    res = accept_with(3)  # 21 on the case
    assert res.status_code == 422 and "at most 20 photos" in res.get_json()["error"]["message"]
    res = accept_with(2)  # 20
    assert res.status_code == 200, res.get_json()
    assert len(client.get(f"/api/cases/{case['id']}").get_json()["photos"]) == 20


def test_anonymous_uploads_are_limited_per_address(app, anon_client, client, images) -> None:  # type: ignore[no-untyped-def]
    saved = app.config.get("ANON_PHOTO_LIMIT")
    app.config["ANON_PHOTO_LIMIT"] = 3
    try:
        two = [(io.BytesIO(images["small"]), f"p{i}.jpg") for i in range(2)]
        first = anon_client.post(
            "/api/cases", data={**_body(), "photo": two}, content_type="multipart/form-data"
        )
        assert first.status_code == 201, first.get_json()
        again = [(io.BytesIO(images["small"]), f"p{i}.jpg") for i in range(2)]
        res = anon_client.post(
            "/api/cases", data={**_body(), "photo": again}, content_type="multipart/form-data"
        )
        assert res.status_code == 429 and res.headers["Retry-After"]
        other = anon_client.post(
            "/api/cases",
            data={**_body(), "photo": [(io.BytesIO(images["small"]), "p.jpg")]},
            content_type="multipart/form-data",
            environ_base={"REMOTE_ADDR": "10.1.2.3"},
        )
        assert other.status_code == 201  # another address has its own allowance
        res = anon_client.post(
            "/open311/v2/requests.json",
            data={
                "service_code": "streetlight",
                "lat": str(POINT[1]),
                "long": str(POINT[0]),
                "media": (io.BytesIO(images["small"]), "m.jpg"),
                "description": "x",
            },
            content_type="multipart/form-data",
        )
        assert res.status_code == 201  # the third photo of this address
        res = anon_client.post(
            "/open311/v2/requests.json",
            data={
                "service_code": "streetlight",
                "lat": str(POINT[1]),
                "long": str(POINT[0]),
                "media": (io.BytesIO(images["small"]), "m.jpg"),
                "description": "y",
            },
            content_type="multipart/form-data",
        )
        assert res.status_code == 429
        # Staff are not limited this way.
        res = client.post(
            "/api/cases",
            data={**_body(), "photo": [(io.BytesIO(images["small"]), "p.jpg")]},
            content_type="multipart/form-data",
        )
        assert res.status_code == 201
    finally:
        app.config["ANON_PHOTO_LIMIT"] = saved


def test_a_burst_of_oversized_images_keeps_the_worker_within_its_memory_budget(
    database_url, admin_auth, images
) -> None:  # type: ignore[no-untyped-def]
    created: list[int] = []
    with own_server(database_url, threads=16) as server:
        baseline = server.peak_rss_mb()

        def post(blob: bytes) -> int:
            req = urllib.request.Request(
                server.base + "/api/cases",
                data=json.dumps(_body(photo_base64=_b64(blob))).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {admin_auth['token']}",
                },
            )
            try:
                with urllib.request.urlopen(req, timeout=300) as res:
                    created.append(json.loads(res.read())["case"]["id"])
                    return res.status
            except urllib.error.HTTPError as err:
                return err.code

        burst = [images["bomb_png"]] * 8 + [images["jpeg_48mp"]] * 4 + [images["jpeg_12mp"]] * 2
        with ThreadPoolExecutor(max_workers=len(burst)) as pool:
            statuses = list(pool.map(post, burst))
        peak = server.peak_rss_mb()
    try:
        print(f"worker peak RSS {peak:.0f} MiB (at start {baseline:.0f} MiB)")
        assert peak < RSS_BUDGET_MB, f"peak {peak:.0f} MiB"
        assert statuses[:8] == [422] * 8, statuses
        assert statuses[8:] == [201] * 6, statuses
    finally:
        app = create_app({"DATABASE_URL": database_url, "TESTING": True})
        with app.app_context():
            session = get_db().session()
            with transaction(session):
                delete_cases(session, created)
            session.close()
        app.extensions["gridgov_db"].dispose()

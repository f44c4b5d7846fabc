"""An import job on a real server runs on a background thread: the upload answers 202 at once
and the status endpoint follows the job to its report (a dry run: nothing else is written)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

from sqlalchemy import create_engine, text

from tests.own_server import own_server


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_a_background_import_job_reports_its_progress(database_url, admin_auth) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    with engine.connect() as c:
        lon, lat, code = c.execute(
            text(
                "SELECT ST_X(p), ST_Y(p), code FROM (SELECT ST_PointOnSurface(geom) p, code "
                "FROM grid WHERE level = 4 AND valid_to IS NULL ORDER BY code LIMIT 1) s"
            )
        ).one()
        before = c.scalar(text("SELECT count(*) FROM household"))
    body, ctype = _multipart(
        {"dry_run": "1"},
        {"file": ("buildings.csv", f"lon,lat,building,households\n{lon},{lat},1栋,12\n".encode())},
    )
    headers = {"Authorization": f"Bearer {admin_auth['token']}", "Content-Type": ctype}
    job_id = None
    try:
        with own_server(
            database_url, app_spec="tests.own_server:testing_app()", IMPORT_JOBS_INLINE="0"
        ) as server:
            req = urllib.request.Request(
                f"{server.base}/api/import-jobs/households", data=body, headers=headers
            )
            with urllib.request.urlopen(req, timeout=60) as res:
                assert res.status == 202
                job = json.loads(res.read())
            job_id = job["id"]
            assert job["status"] in ("queued", "running", "done")
            deadline = time.monotonic() + 60
            while True:
                req = urllib.request.Request(
                    f"{server.base}/api/import-jobs/{job_id}",
                    headers={"Authorization": headers["Authorization"]},
                )
                with urllib.request.urlopen(req, timeout=30) as res:
                    status = json.loads(res.read())
                if status["status"] in ("done", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert status["status"] == "done", status
        assert status["report"]["dry_run"] and status["report"]["created"] == 12
        assert status["report"]["by_grid"] == {code: 12}
        with engine.connect() as c:
            assert c.scalar(text("SELECT count(*) FROM household")) == before
    finally:
        if job_id is not None:
            with engine.begin() as c:
                c.execute(text("DELETE FROM import_job WHERE id = :j"), {"j": job_id})
        engine.dispose()

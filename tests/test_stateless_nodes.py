"""Two app nodes (`gridgov serve` on two ports, behind the sample nginx configuration of
`deploy/`) behave as one: a
session opened on one works on the other and ends on both, sign-in failures count across
them, a repeated report with the same idempotency key makes one case whichever node gets it,
and an edit made on one shows in the other's next tile. Everything a node remembers between
requests lives in PostgreSQL."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.orm import Session

from app import create_app
from app.auth import SESSION_COOKIE
from app.db import get_db, transaction
from app.services import users as user_svc
from tests.api.case_helpers import POINT
from tests.cleanup import delete_cases
from tests.own_server import _free_port
from tests.web.test_tiles import OWN_MICRO, tile_of

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Node-test-password-2026"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


# The test's own certificate authority is the proxy's self-signed certificate: accept it.
_TLS = ssl.create_default_context()
_TLS.check_hostname = False
_TLS.verify_mode = ssl.CERT_NONE
OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=_TLS))


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Origin", base)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with OPENER.open(req, timeout=30) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _cookie(headers: dict[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "set-cookie" and value.startswith(SESSION_COOKIE + "="):
            return value.split(";", 1)[0]
    raise AssertionError(f"no session cookie in {headers}")


@pytest.fixture(scope="module")
def two_nodes(database_url: str, owner_database_url: str, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Two `gridgov serve` processes on the test database, each on its own port."""
    logs = tmp_path_factory.mktemp("nodes")
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        GRIDGOV_MIGRATION_DATABASE_URL=owner_database_url,
        GRIDGOV_SESSION_COOKIE_SECURE="0",
        GRIDGOV_TRUST_PROXY="1",  # as behind deploy/nginx/gridgov.conf
    )
    gridgov = str(Path(sys.executable).parent / "gridgov")
    ports = [_free_port(), _free_port()]
    procs = []
    try:
        for port in ports:
            procs.append(
                subprocess.Popen(
                    [
                        gridgov,
                        "serve",
                        "--no-sample",
                        "--port",
                        str(port),
                        "--workers",
                        "1",
                        "--no-access-log",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=(logs / f"{port}.log").open("w"),
                    stderr=subprocess.STDOUT,
                )
            )
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        for base, proc, port in zip(bases, procs, ports, strict=True):
            deadline = time.monotonic() + 90
            while True:
                try:
                    if call(base, "GET", "/login")[0] == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((logs / f"{port}.log").read_text()[-2000:])
                time.sleep(0.3)
        yield bases
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def _new_admin(database_url: str) -> str:
    name = f"t-node-{secrets.token_hex(4)}"
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            user_svc.create_user(session, name, "admin", PASSWORD)
        session.close()
    app.extensions["gridgov_db"].dispose()
    return name


def _sign_in(base: str, username: str) -> tuple[str, str]:
    status, headers, body = call(
        base, "POST", "/api/auth/login", {"username": username, "password": PASSWORD}
    )
    assert status == 200, body
    return _cookie(headers), json.loads(body)["csrf_token"]


def test_a_session_opened_on_one_node_works_and_ends_on_the_other(two_nodes, database_url) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    name = _new_admin(database_url)
    cookie, csrf = _sign_in(a, name)
    status, _, body = call(b, "GET", "/api/auth/me", headers={"Cookie": cookie})
    assert status == 200 and json.loads(body)["username"] == name
    # A change on B with the CSRF token A gave.
    status, _, body = call(
        b, "POST", "/api/auth/logout", {}, headers={"Cookie": cookie, "X-CSRF-Token": csrf}
    )
    assert status == 200, body
    status, _, body = call(a, "GET", "/api/auth/me", headers={"Cookie": cookie})
    assert json.loads(body)["authenticated"] is False


def test_sign_in_failures_count_across_nodes(two_nodes, database_url) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    name = _new_admin(database_url)
    for i in range(int(user_svc.DEFAULT_LIMITS["LOGIN_MAX_FAILURES"])):
        status, _, _ = call(
            (a, b)[i % 2], "POST", "/api/auth/login", {"username": name, "password": "wrong"}
        )
        assert status == 401
    # Locked on both, even with the right password.
    for base in (a, b):
        status, _, _ = call(
            base, "POST", "/api/auth/login", {"username": name, "password": PASSWORD}
        )
        assert status in (401, 429), status


def test_a_repeated_report_makes_one_case_whichever_node_gets_it(two_nodes, database_url) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    key = f"node-{secrets.token_hex(8)}"
    report = {
        "x": POINT[0],
        "y": POINT[1],
        "category": "streetlight",
        "description": "两个节点的重复上报",
        "source": "resident",
        "reporter_contact": "13912345678",
    }
    answers = [
        call(base, "POST", "/api/cases", report, headers={"Idempotency-Key": key})
        for base in (a, b, a)
    ]
    assert all(s in (200, 201) for s, _, _ in answers), answers
    bodies = [json.loads(body) for _, _, body in answers]
    assert {b["code"] for b in bodies} != {None} and len({b["code"] for b in bodies}) == 1
    assert [b["created"] for b in bodies] == [True, False, False]
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with Session(engine) as s:
            ids = s.scalars(
                text("SELECT id FROM \"case\" WHERE description = '两个节点的重复上报'")
            ).all()
            delete_cases(s, list(ids))
            s.commit()
    finally:
        engine.dispose()
    assert len(ids) == 1


def test_an_edit_on_one_node_shows_in_the_other_nodes_next_tile(
    two_nodes, database_url, admin_auth
) -> None:  # type: ignore[no-untyped-def]
    a, b = two_nodes
    auth = {"Authorization": f"Bearer {admin_auth['token']}", "Accept-Encoding": "gzip"}
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        gid, name, lon, lat = conn.execute(
            text(
                "SELECT id, name, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                "FROM grid WHERE code = :c AND valid_to IS NULL"
            ),
            {"c": OWN_MICRO},
        ).one()
    engine.dispose()
    z, x, y = tile_of(lon, lat, 16)

    def names_on(base: str) -> dict[str, str]:
        status, headers, raw = call(base, "GET", f"/tiles/grids/{z}/{x}/{y}.mvt", headers=auth)
        assert status == 200
        if headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        tile = mapbox_vector_tile.decode(raw)
        return {
            f["properties"]["code"]: f["properties"].get("name")
            for f in tile.get("grids", {}).get("features", [])
        }

    assert names_on(b)[OWN_MICRO] == name  # B has cut (and cached) the tile
    version = json.loads(call(a, "GET", f"/api/grids/{gid}", headers=auth)[2])["properties"][
        "version"
    ]
    renamed = "两节点改名微网格"
    try:
        status, _, body = call(
            a,
            "PATCH",
            f"/api/grids/{gid}",
            {
                "type": "Feature",
                "geometry": None,
                "properties": {"name": renamed, "version": version},
            },
            headers=auth,
        )
        assert status == 200, body
        assert names_on(b)[OWN_MICRO] == renamed
    finally:
        current = json.loads(call(a, "GET", f"/api/grids/{gid}", headers=auth)[2])["properties"]
        if current["name"] != name:
            call(
                a,
                "PATCH",
                f"/api/grids/{gid}",
                {
                    "type": "Feature",
                    "geometry": None,
                    "properties": {"name": name, "version": current["version"]},
                },
                headers=auth,
            )


# ------------------------------------------------------------------ behind deploy/nginx

SITE = ROOT / "deploy" / "nginx" / "gridgov.conf"


def _site_config(tmp: Path, nodes: list[str], http_port: int, https_port: int) -> str:
    """The sample site configuration with its "site:" lines pointed at this test's folder,
    ports and nodes (every such line must be found, so the sample cannot drift)."""
    site = SITE.read_text()
    swaps = [
        (r"proxy_cache_path /var/cache/nginx/gridgov", f"proxy_cache_path {tmp}/cache"),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        (r"/etc/ssl/gridgov/fullchain.pem", str(tmp / "cert.pem")),
        (r"/etc/ssl/gridgov/privkey.pem", str(tmp / "key.pem")),
        (r"server 127.0.0.1:8001 ", f"server {nodes[0].removeprefix('http://')} "),
        (r"server 127.0.0.1:8002 ", f"server {nodes[1].removeprefix('http://')} "),
    ]
    for old, new in swaps:
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    return site


@pytest.fixture(scope="module")
def proxy(two_nodes):  # type: ignore[no-untyped-def]
    """nginx with the sample configuration in front of the two nodes; yields (http, https)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: scripts/setup.sh installs nginx-light"
    tmp = Path(tempfile.mkdtemp(prefix="gridgov-nginx-"))
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(tmp / "key.pem"),
            "-out",
            str(tmp / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    http_port, https_port = _free_port(), _free_port()
    (tmp / "site.conf").write_text(_site_config(tmp, two_nodes, http_port, https_port))
    user = "user root root;" if os.geteuid() == 0 else ""
    temp_paths = " ".join(
        f"{kind}_temp_path {tmp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp / "nginx.conf").write_text(
        f"{user}\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        "events { worker_connections 256; }\n"
        f"http {{ access_log off; {temp_paths} include {tmp}/site.conf; }}\n"
    )
    cmd = [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")]
    check = subprocess.run([*cmd, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stderr=subprocess.PIPE)
    https = f"https://127.0.0.1:{https_port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if call(https, "GET", "/login")[0] == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (tmp / "error.log").read_text()
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{http_port}", https
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)


def test_behind_nginx_tls_sessions_origins_and_addresses_work(proxy, database_url) -> None:  # type: ignore[no-untyped-def]
    http, https = proxy
    status, headers, _ = call(http, "GET", "/login")
    assert status == 301 and headers["Location"].startswith("https://127.0.0.1")
    assert headers["Location"].endswith("/login")

    name = _new_admin(database_url)
    cookie, csrf = _sign_in(https, name)  # sends Origin: the https address with its port
    status, _, body = call(https, "GET", "/api/auth/me", headers={"Cookie": cookie})
    assert json.loads(body)["username"] == name
    # A change with the page's Origin passes the same-origin check through the proxy.
    status, _, body = call(
        https, "POST", "/api/auth/logout", {}, headers={"Cookie": cookie, "X-CSRF-Token": csrf}
    )
    assert status == 200, body

    # An address the client writes itself is never taken for its own.
    status, _, _ = call(
        https,
        "POST",
        "/api/auth/login",
        {"username": name, "password": "wrong"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert status == 401
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            ip = conn.execute(
                text(
                    "SELECT host(ip) FROM audit_log WHERE kind = 'login_failed' "
                    "AND username = :u ORDER BY id DESC LIMIT 1"
                ),
                {"u": name},
            ).scalar_one()
    finally:
        engine.dispose()
    assert ip == "127.0.0.1"


def test_behind_nginx_static_files_are_cached_and_tiles_are_not(proxy, admin_auth) -> None:  # type: ignore[no-untyped-def]
    _, https = proxy
    first = call(https, "GET", "/static/js/emap.js")
    second = call(https, "GET", "/static/js/emap.js")
    assert first[0] == second[0] == 200 and first[2] == second[2]
    assert second[1].get("X-Cache") == "HIT"
    auth = {"Authorization": f"Bearer {admin_auth['token']}"}
    for _ in range(2):
        status, headers, _ = call(https, "GET", "/tiles/grids/14/13527/6647.mvt", headers=auth)
        assert status == 200
        assert "X-Cache" not in headers  # never kept by the proxy: it differs by caller
        assert "private" in headers.get("Cache-Control", "")

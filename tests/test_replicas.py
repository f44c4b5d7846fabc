"""Reads on a streaming replica: a primary and a replica of their own, made by
`gridgov db start --replicas 1`, migrated and loaded with the sample on the primary. Where a
request read is told by the answer's ``X-Read-From`` header, and proved by what it returns while
the replica's replay is paused (the replica answers the old name, the primary the new one)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, pool, text

from app import create_app
from app import embedded_replica as er
from app import migrate as mig
from app.cli import main
from app.db import get_db, transaction
from app.embedded_pg import Cluster
from app.services import importer
from app.services import users as user_svc
from tests.web.test_tiles import OWN_MICRO, decode, features, tile_of

REPORTS = int(os.environ.get("GRIDGOV_TEST_RYW_TRIES", "300"))


def _sql(url: str, sql: str, **params):  # type: ignore[no-untyped-def]
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def _caught_up(primary: Cluster, replica: Cluster, timeout: float = 30.0) -> None:
    want = primary.psql("postgres", "SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + timeout
    while replica.psql("postgres", f"SELECT pg_last_wal_replay_lsn() >= '{want}'") != "t":
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pair():  # type: ignore[no-untyped-def]
    """A primary and one replica, started through the command line, with the sample."""
    root = Path(tempfile.mkdtemp(prefix="gridgov-replicas-"))
    os.chmod(root, 0o755)  # the account that runs PostgreSQL must reach it
    env = {"GRIDGOV_PG_DIR": str(root / "pg"), "GRIDGOV_DATABASE_URL": "", "DATABASE_URL": ""}
    primary = Cluster(root / "pg")
    replica = er.replica(primary, 1)
    try:
        out = CliRunner().invoke(main, ["db", "start", "--replicas", "1"], env=env)
        assert out.exit_code == 0, out.output
        assert "replica-1 (reads)" in out.output and replica.is_running()
        mig.upgrade(primary.owner_url(), app_url=primary.url())
        app = create_app({"DATABASE_URL": primary.url(), "TESTING": True})
        with app.app_context():
            session = get_db().session()
            with transaction(session):
                importer.load_directory(session)
                admin = user_svc.create_user(session, "replica-admin", "admin", "Replica-pass-2026")
                limits = dict(user_svc.DEFAULT_LIMITS, SESSION_IDLE_MINUTES=600)
                token = user_svc.start_session(session, admin, None, limits, kind="token").token
                cookie = user_svc.start_session(session, admin, None, limits).token
            session.close()
        app.extensions["gridgov_db"].dispose()
        _caught_up(primary, replica)
        yield {"primary": primary, "replica": replica, "token": token, "cookie": cookie, "env": env}
    finally:
        CliRunner().invoke(main, ["db", "stop"], env=env)
        replica.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def routed(pair):  # type: ignore[no-untyped-def]
    app = create_app(
        {
            "DATABASE_URL": pair["primary"].url(),
            "DATABASE_READ_URL": pair["replica"].url(),
            "READ_REPLICA_RETRY_SECONDS": 1,
            "SESSION_IDLE_MINUTES": 600,
            "TESTING": True,
        }
    )
    yield app
    app.extensions["gridgov_db"].dispose()


def _auth(pair) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {pair['token']}"}


def _micro(pair) -> tuple[int, int, str, str]:  # type: ignore[no-untyped-def]
    gid, version, lon, lat = _sql(
        pair["primary"].owner_url(),
        "SELECT id, version, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
        "FROM grid WHERE code = :c AND valid_to IS NULL",
        c=OWN_MICRO,
    )[0]
    z, x, y = tile_of(lon, lat, 16)
    return gid, version, f"/tiles/grids/{z}/{x}/{y}.mvt", f"/api/locate?lon={lon}&lat={lat}"


def _tile_name(res) -> str:  # type: ignore[no-untyped-def]
    return {
        f["properties"]["code"]: f["properties"]["name"] for f in features(decode(res), "grids")
    }[OWN_MICRO]


def test_heavy_reads_go_to_the_replica_and_everything_else_to_the_primary(pair, routed) -> None:  # type: ignore[no-untyped-def]
    c = routed.test_client()
    _gid, _v, tile, locate = _micro(pair)
    for url in (tile, locate, "/api/overview", "/api/search?q=3401", "/api/emap/home"):
        res = c.get(url, headers=_auth(pair))
        assert res.status_code == 200, (url, res.get_data(as_text=True)[:300])
        assert res.headers["X-Read-From"] == "replica-1", url
    assert c.get(locate, headers=_auth(pair)).get_json()["grid"]["code"].startswith("340188")
    # A list of personal data (it writes its audit entry) and every page read the primary.
    res = c.get("/api/ledgers/households?limit=1", headers=_auth(pair))
    assert res.status_code == 200 and "X-Read-From" not in res.headers
    # The replica really served them: the app's connections are open there.
    held = pair["replica"].psql(
        "postgres", "SELECT count(*) FROM pg_stat_activity WHERE usename = 'gridgov_app'"
    )
    assert int(held) >= 1


def test_a_read_with_the_write_position_sees_the_write_while_the_replica_lags(pair, routed) -> None:  # type: ignore[no-untyped-def]
    c = routed.test_client()
    gid, version, tile, _locate = _micro(pair)
    before = _tile_name(c.get(tile, headers=_auth(pair)))
    pair["replica"].psql("postgres", "SELECT pg_wal_replay_pause()")
    try:
        res = c.patch(
            f"/api/grids/{gid}",
            json={
                "type": "Feature",
                "geometry": None,
                "properties": {"name": "主库新名", "version": version},
            },
            headers=_auth(pair),
        )
        assert res.status_code == 200, res.get_json()
        lsn = res.headers["X-After-LSN"]
        # With the position: the replica has not replayed it, so the primary answers.
        seen = c.get(tile, headers={**_auth(pair), "X-After-LSN": lsn})
        assert seen.headers["X-Read-From"] == "primary"
        assert _tile_name(seen) == "主库新名"
        # Without it (a client that did not write): the replica answers what it replayed.
        old = routed.test_client().get(tile, headers=_auth(pair))
        assert old.headers["X-Read-From"] == "replica-1"
        assert _tile_name(old) == before
    finally:
        pair["replica"].psql("postgres", "SELECT pg_wal_replay_resume()")
    _caught_up(pair["primary"], pair["replica"])
    again = c.get(tile, headers={**_auth(pair), "X-After-LSN": lsn})
    assert again.headers["X-Read-From"] == "replica-1"
    assert _tile_name(again) == "主库新名"


def test_a_browser_carries_its_write_position_in_a_cookie(pair, routed) -> None:  # type: ignore[no-untyped-def]
    from app.auth import SESSION_COOKIE

    c = routed.test_client()
    c.set_cookie(SESSION_COOKIE, pair["cookie"])
    gid, version, tile, _locate = _micro(pair)
    pair["replica"].psql("postgres", "SELECT pg_wal_replay_pause()")
    try:
        csrf = _sql(
            pair["primary"].owner_url(),
            "SELECT csrf_token FROM user_session WHERE kind = 'browser' ORDER BY id DESC LIMIT 1",
        )[0][0]
        res = c.patch(
            f"/api/grids/{gid}",
            json={
                "type": "Feature",
                "geometry": None,
                "properties": {"name": "浏览器改名", "version": version},
            },
            headers={"X-CSRF-Token": csrf},
        )
        assert res.status_code == 200, res.get_json()
        assert c.get_cookie("gg_after_lsn").value == res.headers["X-After-LSN"]
        seen = c.get(tile)
        assert seen.headers["X-Read-From"] == "primary" and _tile_name(seen) == "浏览器改名"
    finally:
        pair["replica"].psql("postgres", "SELECT pg_wal_replay_resume()")
    _caught_up(pair["primary"], pair["replica"])


def test_a_session_read_on_the_replica_is_kept_alive_on_the_primary(pair, routed) -> None:  # type: ignore[no-untyped-def]
    from app.auth import SESSION_COOKIE

    owner = pair["primary"].owner_url()
    _sql(
        owner,
        "UPDATE user_session SET last_seen_at = now() - interval '5 minutes' WHERE kind = 'browser'",
    )
    _caught_up(pair["primary"], pair["replica"])
    browser = routed.test_client()
    browser.set_cookie(SESSION_COOKIE, pair["cookie"])
    _gid, _v, _tile, locate = _micro(pair)
    res = browser.get(locate)
    assert res.status_code == 200 and res.headers["X-Read-From"] == "replica-1"
    (fresh,) = _sql(
        owner,
        "SELECT bool_and(last_seen_at > now() - interval '1 minute') "
        "FROM user_session WHERE kind = 'browser'",
    )[0]
    assert fresh  # the once-a-minute update went to the primary


def test_a_case_reported_then_searched_for_is_never_missing(pair, routed) -> None:  # type: ignore[no-untyped-def]
    c = routed.test_client()
    _gid, _v, _tile, locate = _micro(pair)
    lon, lat = (float(v.split("=")[1]) for v in locate.split("?")[1].split("&"))
    where = {"primary": 0, "replica-1": 0}
    for i in range(REPORTS):
        res = c.post(
            "/api/cases",
            json={"x": lon, "y": lat, "category": "garbage", "description": f"回读 {i}"},
            headers=_auth(pair),
        )
        assert res.status_code == 201, res.get_json()
        code = res.get_json()["case"]["code"]
        back = c.get(
            f"/api/search?q={code}&kinds=case",
            headers={**_auth(pair), "X-After-LSN": res.headers["X-After-LSN"]},
        )
        assert back.status_code == 200
        assert code in [r["label"] for r in back.get_json()["items"]], (i, code)
        where[back.headers["X-Read-From"]] += 1
    assert sum(where.values()) == REPORTS


def test_failover_drill(pair, routed, caplog) -> None:  # type: ignore[no-untyped-def]
    from app.auth import SESSION_COOKIE

    c = routed.test_client()
    gid, _version, tile, locate = _micro(pair)
    primary, replica = pair["primary"], pair["replica"]
    assert c.get(tile, headers=_auth(pair)).headers["X-Read-From"] == "replica-1"

    # The replica stops: reads go on from the primary, with one log line and no error.
    replica.stop()
    with caplog.at_level(logging.WARNING, logger="app.replicas"):
        for _ in range(5):
            res = c.get(locate, headers=_auth(pair))
            assert res.status_code == 200
            assert res.headers["X-Read-From"] == "primary"
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1, [r.getMessage() for r in caplog.records]

    # It comes back: after the retry interval the reads return to it.
    replica.start()
    time.sleep(1.2)
    assert c.get(tile, headers=_auth(pair)).headers["X-Read-From"] == "replica-1"

    # The primary stops: writes answer 503 with Retry-After; reads from the replica go on,
    # for a token and for a browser whose session is due for its last-use update.
    _sql(
        primary.owner_url(),
        "UPDATE user_session SET last_seen_at = now() - interval '5 minutes' "
        "WHERE kind = 'browser'",
    )
    _caught_up(primary, replica)
    primary.stop()
    try:
        res = c.patch(
            f"/api/grids/{gid}",
            json={"properties": {"name": "写不进"}, "version": 1},
            headers=_auth(pair),
        )
        assert res.status_code == 503 and res.headers["Retry-After"]
        for url in (tile, locate):
            res = c.get(url, headers=_auth(pair))
            assert res.status_code == 200, res.get_data(as_text=True)[:300]
            assert res.headers["X-Read-From"] == "replica-1"
        browser = routed.test_client()
        browser.set_cookie(SESSION_COOKIE, pair["cookie"])
        res = browser.get(locate)
        assert res.status_code == 200 and res.headers["X-Read-From"] == "replica-1"
    finally:
        primary.start()
    # Both back: writes and reads as before.
    _gid, version, _t, _l = _micro(pair)
    res = c.patch(
        f"/api/grids/{gid}",
        json={
            "type": "Feature",
            "geometry": None,
            "properties": {"name": "恢复后改名", "version": version},
        },
        headers=_auth(pair),
    )
    assert res.status_code == 200, res.get_json()
    _caught_up(primary, replica)
    res = c.get(tile, headers=_auth(pair))
    assert res.headers["X-Read-From"] == "replica-1" and _tile_name(res) == "恢复后改名"


def test_reads_spread_over_a_list_of_replicas_and_skip_one_that_is_down(pair) -> None:  # type: ignore[no-untyped-def]
    good = pair["replica"].url()
    dead = good.replace(str(pair["replica"].socket_dir), "/nonexistent-gridgov-replica")
    _gid, _v, tile, locate = _micro(pair)
    app = create_app(
        {
            "DATABASE_URL": pair["primary"].url(),
            "DATABASE_READ_URL": f"{good},{good}",
            "TESTING": True,
        }
    )
    try:
        c = app.test_client()
        seen = [c.get(tile, headers=_auth(pair)).headers["X-Read-From"] for _ in range(4)]
        assert sorted(seen) == ["replica-1", "replica-1", "replica-2", "replica-2"]
    finally:
        app.extensions["gridgov_db"].dispose()
    app = create_app(
        {
            "DATABASE_URL": pair["primary"].url(),
            "DATABASE_READ_URL": f"{dead},{good}",
            "TESTING": True,
        }
    )
    try:
        c = app.test_client()
        for _ in range(4):
            res = c.get(locate, headers=_auth(pair))
            assert res.status_code == 200 and res.headers["X-Read-From"] == "replica-2"
    finally:
        app.extensions["gridgov_db"].dispose()


def test_the_embedded_app_reads_from_running_replicas_and_status_shows_the_lag(
    pair, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    for key, value in pair["env"].items():
        monkeypatch.setenv(key, value)
    out = CliRunner().invoke(main, ["db", "status"], env=pair["env"])
    assert out.exit_code == 0, out.output
    status = json.loads(out.output)
    (rep,) = status["replicas"]
    assert rep["name"] == "replica-1" and rep["running"] and rep["state"] == "streaming"
    assert isinstance(rep["lag_bytes"], int) and rep["lag_bytes"] >= 0
    assert rep["lag_seconds"] is not None and rep["lag_seconds"] >= 0

    app = create_app({"TESTING": True})
    try:
        assert app.config["DATABASE_READ_URL"] == [pair["replica"].url()]
        res = app.test_client().get("/api/emap/home", headers=_auth(pair))
        assert res.status_code == 200
        assert res.headers["X-Read-From"] == "replica-1"
    finally:
        app.extensions["gridgov_db"].dispose()

    out = CliRunner().invoke(main, ["db", "stop"], env=pair["env"])
    assert out.exit_code == 0 and "replica-1 stopped" in out.output and "stopped" in out.output
    assert not pair["replica"].is_running() and not pair["primary"].is_running()


def test_a_replica_stopped_too_long_frees_the_primarys_wal_and_is_copied_afresh() -> None:
    """A stopped replica's slot keeps at most GRIDGOV_REPLICA_WAL_KEEP of WAL on the primary
    (it used to keep all of it, until the disk was full); once the primary gives the slot up,
    the next `db start --replicas 1` copies the replica again and it streams."""
    root = Path(tempfile.mkdtemp(prefix="gridgov-replica-wal-"))
    os.chmod(root, 0o755)
    env = {
        "GRIDGOV_PG_DIR": str(root / "pg"),
        "GRIDGOV_DATABASE_URL": "",
        "DATABASE_URL": "",
        "GRIDGOV_REPLICA_WAL_KEEP": "48MB",
    }
    primary = Cluster(root / "pg")
    replica = er.replica(primary, 1)
    try:
        out = CliRunner().invoke(main, ["db", "start", "--replicas", "1"], env=env)
        assert out.exit_code == 0, out.output
        assert primary.psql("postgres", "SHOW max_slot_wal_keep_size") == "48MB"
        assert replica.stop()
        held = primary.psql(
            "postgres",
            "SELECT pg_walfile_name(restart_lsn) FROM pg_replication_slots "
            f"WHERE slot_name = '{replica.slot}'",
        )
        assert held, "the stopped replica has a slot that holds WAL"
        primary.psql("gridgov", "CREATE TABLE churn (x text)")
        for _ in range(6):  # six 16 MB segments, more than the 48 MB a slot may hold
            primary.psql(
                "gridgov",
                "INSERT INTO churn SELECT repeat('x', 900) FROM generate_series(1, 20000); "
                "SELECT pg_switch_wal()",
            )
        primary.psql("postgres", "CHECKPOINT")

        out = CliRunner().invoke(main, ["db", "status"], env=env)
        assert out.exit_code == 0, out.output
        (rep,) = json.loads(out.output)["replicas"]
        assert rep["running"] is False and rep["slot"] == "lost"
        files = primary.psql("postgres", "SELECT name FROM pg_ls_waldir()").split()
        assert held not in files, "the primary still keeps the WAL of a slot it gave up"

        out = CliRunner().invoke(main, ["db", "start", "--replicas", "1"], env=env)
        assert out.exit_code == 0, out.output
        assert replica.is_running()
        primary.psql("gridgov", "INSERT INTO churn VALUES ('after the new copy')")
        _caught_up(primary, replica)
        assert (
            replica.psql("gridgov", "SELECT count(*) FROM churn WHERE x = 'after the new copy'")
            == "1"
        )
        out = CliRunner().invoke(main, ["db", "status"], env=env)
        (rep,) = json.loads(out.output)["replicas"]
        assert rep["state"] == "streaming" and rep["slot"] == "reserved"
        assert 0 <= rep["wal_held_bytes"] < 48 * 2**20
    finally:
        CliRunner().invoke(main, ["db", "stop"], env=env)
        replica.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)

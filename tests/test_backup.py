"""`gridgov db backup` / `restore`: the test database is dumped and restored into a fresh
cluster of its own; every table comes back with the same rows (counts and checksums), the app
runs on the restored copy and answers as on the original, and a restore that differs from its
manifest, or one into a database that holds data, is refused."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, pool, text

from app import backup as bk
from app import create_app
from app.cli import main
from app.embedded_pg import Cluster


@pytest.fixture(scope="module")
def fresh_cluster():  # type: ignore[no-untyped-def]
    """A second private cluster, created for this module and removed after it."""
    root = Path(tempfile.mkdtemp(prefix="gridgov-restore-"))
    os.chmod(root, 0o755)  # the account that runs PostgreSQL must reach it
    cluster = Cluster(root / "pg")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _scalar(url: str, sql: str):  # type: ignore[no-untyped-def]
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


GEOM_SUM = "SELECT md5(string_agg(id::text || ST_AsEWKB(geom)::text, ',' ORDER BY id)) FROM {table}"


def test_backup_and_restore_into_a_fresh_cluster(
    owner_database_url,
    database_url,
    admin_auth,
    fresh_cluster,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    archive = tmp_path / "city.dump"
    env = {
        "GRIDGOV_DATABASE_URL": database_url,
        "GRIDGOV_MIGRATION_DATABASE_URL": owner_database_url,
    }
    out = CliRunner().invoke(main, ["db", "backup", str(archive)], env=env)
    assert out.exit_code == 0, out.output
    assert "备份完成" in out.output
    manifest = json.loads(bk.manifest_path(archive).read_text())
    grids = _scalar(owner_database_url, "SELECT count(*) FROM grid")
    households = _scalar(owner_database_url, "SELECT count(*) FROM household")
    assert grids > 100 and households > 1000  # the sample is there
    assert manifest["tables"]["grid"]["rows"] == grids
    assert manifest["tables"]["household"]["rows"] == households
    assert "case" in manifest["tables"] and "audit_log" in manifest["tables"]

    # Restore with the command, into the fresh cluster's empty default database.
    out = CliRunner().invoke(
        main, ["db", "restore", str(archive)], env={"GRIDGOV_PG_DIR": str(fresh_cluster.root)}
    )
    assert out.exit_code == 0, out.output
    assert "逐表核对一致" in out.output

    restored_owner = fresh_cluster.owner_url()
    for table in ("grid", "household", "case", "service_point", "camera"):
        q = GEOM_SUM.format(table=f'"{table}"')
        assert _scalar(restored_owner, q) == _scalar(owner_database_url, q), table
    assert bk.table_sums(restored_owner) == bk.table_sums(owner_database_url)

    # The app runs on the copy as its unprivileged role, with the same accounts and answers.
    copy = create_app({"DATABASE_URL": fresh_cluster.url(), "TESTING": True})
    original = create_app({"DATABASE_URL": database_url, "TESTING": True})
    try:
        headers = {"Authorization": f"Bearer {admin_auth['token']}"}
        some = _scalar(
            owner_database_url,
            "SELECT ST_AsText(ST_PointOnSurface(geom)) FROM household ORDER BY id LIMIT 1",
        )
        lon, lat = some.removeprefix("POINT(").rstrip(")").split()
        url = f"/api/locate?lon={lon}&lat={lat}"
        a = copy.test_client().get(url, headers=headers)
        b = original.test_client().get(url, headers=headers)
        assert a.status_code == 200, a.get_json()
        assert a.get_json() == b.get_json()
        assert _scalar(fresh_cluster.url(), "SELECT current_user") == "gridgov_app"
    finally:
        copy.extensions["gridgov_db"].dispose()
        original.extensions["gridgov_db"].dispose()

    # A database that holds data is never overwritten.
    with pytest.raises(bk.BackupError, match="已有数据表"):
        bk.restore(archive, restored_owner, fresh_cluster.url())
    assert _scalar(restored_owner, "SELECT count(*) FROM grid") == grids

    # A copy that does not match its manifest is reported table by table.
    manifest["tables"]["household"]["checksum"] = "0"
    manifest["tables"]["grid"]["rows"] += 1
    bk.manifest_path(archive).write_text(json.dumps(manifest))
    out = CliRunner().invoke(
        main,
        ["db", "restore", str(archive), "--into", "gridgov_second"],
        env={"GRIDGOV_PG_DIR": str(fresh_cluster.root)},
    )
    assert out.exit_code != 0
    assert "表 grid：行数" in out.output and "表 household：行数相同" in out.output

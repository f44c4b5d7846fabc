"""Backup and restore of the whole database with PostgreSQL's own tools (``pg_dump`` /
``pg_restore``), checked by a manifest.

A backup is two files: ``NAME`` (a ``pg_dump`` custom-format archive of the schema and data)
and ``NAME.manifest.json`` (for every table: its row count and a checksum of its rows, taken in
the same snapshot as the dump). A restore goes into an empty database only, as the owner role
(what PostGIS and pg_trgm bring is made by the database's own set-up, not by the archive), then
grants the app's role its privileges, computes the manifest of what it restored and compares it
with the one saved: a restore that differs in one row of one table is reported, not accepted
silently.

The checksum of a table is the sum of the first 60 bits of the MD5 of every row's text (in UTC,
so time stamps read the same); it does not depend on the physical order of the rows, and the
text of a geometry is its exact EWKB.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from app.embedded_pg import _pg_bin

#: Tables that belong to an extension, not to the platform.
EXTENSION_TABLES = {"spatial_ref_sys"}
MANIFEST_SUFFIX = ".manifest.json"
FORMAT = "gridgov-backup/1"


class BackupError(RuntimeError):
    """A backup or restore that could not be done or did not check out."""


@dataclass(frozen=True)
class TableSum:
    rows: int
    checksum: str

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum}


def manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + MANIFEST_SUFFIX)


def _libpq_env(url: str) -> dict[str, str]:
    """The environment that makes the PostgreSQL tools connect where ``url`` points."""
    u = make_url(url)
    env = dict(os.environ)
    host = u.query.get("host") or u.host
    if isinstance(host, tuple):
        host = host[0]
    pairs = {
        "PGHOST": host,
        "PGPORT": str(u.query.get("port") or u.port or ""),
        "PGUSER": u.username,
        "PGPASSWORD": u.password,
        "PGDATABASE": u.database,
    }
    for key, value in pairs.items():
        if value:
            env[key] = str(value)
        else:
            env.pop(key, None)
    return env


def _tables(conn) -> list[str]:  # type: ignore[no-untyped-def]
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') "
            "ORDER BY c.relname"
        )
    ).scalars()
    return [r for r in rows if r not in EXTENSION_TABLES]


def table_sums(url: str, snapshot: str | None = None) -> dict[str, TableSum]:
    """Count and checksum every table of the database at ``url`` (in ``snapshot`` when given:
    the snapshot a ``pg_dump`` runs in)."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            if snapshot:
                conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
            conn.execute(text("SET LOCAL extra_float_digits = 1"))
            sums: dict[str, TableSum] = {}
            for table in _tables(conn):
                q = conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))"
                        f'::bit(60)::bigint), 0)::text FROM public."{table}" t'
                    )
                ).one()
                sums[table] = TableSum(int(q[0]), str(q[1]))
            conn.rollback()
            return sums
    finally:
        engine.dispose()


def _run(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(args, env=_libpq_env(url), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed: {res.stderr.strip()[-2000:]}")
    return res


def backup(owner_url: str, archive: Path) -> dict[str, Any]:
    """Dump the database at ``owner_url`` into ``archive`` and write its manifest beside it;
    return the manifest.

    The dump and the manifest see the same snapshot: a transaction exports it, ``pg_dump``
    reads in it (``--snapshot``) while the manifest is computed in it too.
    """
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as holder:
            holder.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            snapshot = holder.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            revisions = sorted(
                holder.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
            partial = archive.with_name(archive.name + ".part")
            _run(
                [
                    str(_pg_bin() / "pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot}",
                    f"--file={partial}",
                ],
                owner_url,
            )
            sums = table_sums(owner_url, snapshot)
            holder.rollback()
    finally:
        engine.dispose()
    partial.replace(archive)
    manifest = {
        "format": FORMAT,
        "database": make_url(owner_url).database,
        "revisions": revisions,
        "tables": {name: s.as_json() for name, s in sums.items()},
    }
    manifest_path(archive).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def _is_empty(owner_url: str) -> bool:
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return not _tables(conn)
    finally:
        engine.dispose()


def differences(saved: dict[str, Any], restored: dict[str, TableSum]) -> list[str]:
    """Say in what the restored tables differ from the manifest, table by table (Chinese)."""
    out = []
    tables = saved.get("tables", {})
    for name in sorted(set(tables) | set(restored)):
        want, got = tables.get(name), restored.get(name)
        if want is None:
            out.append(f"表 {name}：备份中没有，恢复后却存在")
        elif got is None:
            out.append(f"表 {name}：备份中有 {want['rows']} 行，恢复后缺失")
        elif want["rows"] != got.rows:
            out.append(f"表 {name}：行数 {got.rows}，备份时为 {want['rows']}")
        elif want["checksum"] != got.checksum:
            out.append(f"表 {name}：行数相同（{got.rows}），但内容校验和不同")
    return out


def restore(archive: Path, owner_url: str, app_url: str | None = None) -> dict[str, Any]:
    """Restore ``archive`` into the empty database at ``owner_url`` and check it against its
    manifest; return ``{"tables": …, "checked": bool}``.

    Refuses a database that already holds tables (nothing is overwritten). Extensions and their
    comments in the archive are skipped (the database's set-up has made them, with their own
    rows of ``spatial_ref_sys``); objects are owned
    by ``owner_url``'s role; ``app_url``'s role is then granted its privileges.
    """
    from app import migrate as mig

    archive = Path(archive)
    if not archive.is_file():
        raise BackupError(f"备份文件不存在：{archive}")
    saved = None
    mpath = manifest_path(archive)
    if mpath.is_file():
        saved = json.loads(mpath.read_text())
        if saved.get("format") != FORMAT:
            raise BackupError(f"{mpath} 不是本平台的备份清单（format 应为 {FORMAT}）")
    if not _is_empty(owner_url):
        raise BackupError(
            f"目标数据库 {make_url(owner_url).database} 已有数据表；恢复只写入空数据库，"
            "请先新建一个空数据库（内置数据库：gridgov db restore --into 新库名）"
        )
    pg = _pg_bin()
    listing = _run([str(pg / "pg_restore"), "--list", str(archive)], owner_url).stdout
    kept = [
        line
        for line in listing.splitlines()
        if not (" EXTENSION " in line or line.rstrip().endswith(" EXTENSION"))
        and " COMMENT - EXTENSION " not in line
        and not any(f" TABLE DATA public {t} " in line for t in EXTENSION_TABLES)
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as fh:
        fh.write("\n".join(kept) + "\n")
        list_file = fh.name
    try:
        db = make_url(owner_url).database
        _run(
            [
                str(pg / "pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
                f"--use-list={list_file}",
                f"--dbname={db}",
                str(archive),
            ],
            owner_url,
        )
    finally:
        os.unlink(list_file)
    if app_url:
        mig.grant_app_role(owner_url, app_url)
    sums = table_sums(owner_url)
    result = {"tables": {n: s.as_json() for n, s in sums.items()}, "checked": saved is not None}
    if saved is not None:
        diff = differences(saved, sums)
        if diff:
            raise BackupError("恢复后的数据与备份清单不一致：\n" + "\n".join(diff))
    return result

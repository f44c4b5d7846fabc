"""Imports over HTTP as jobs: the upload answers at once with a job, the import runs in the
background, and the job's row says its stage and progress, then its report or its refusal.

A job is its creator's (and the administrator's): ``job_view`` answers 404 to anyone else.
The import itself runs in its own session and transaction (all or nothing, as every import;
a dry run is rolled back); the progress is written through a second session committed at most
twice a second, so that ``GET /api/import-jobs/<id>`` sees it while the import runs. The audit
entry of a job's import names its creator.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import AppError, NotFound
from app.services import audit
from app.services.importer import options as import_options
from app.services.importer.recount import refresh_household_counts
from app.services.importer.statistics import analyze_imported
from gis.errors import GisError

LOGGER = logging.getLogger(__name__)


def create_job(
    session: Session,
    kind: str,
    source: str,
    *,
    dry_run: bool,
    user_id: int | None,
    scope: frozenset[int] | None,
) -> int:
    """Add a queued job (the caller commits) and return its id."""
    return int(
        session.execute(
            text(
                "INSERT INTO import_job (kind, source, dry_run, created_by, scope) "
                "VALUES (:kind, :source, :dry_run, :user_id, :scope) RETURNING id"
            ),
            {
                "kind": kind,
                "source": source[:200],
                "dry_run": dry_run,
                "user_id": user_id,
                "scope": sorted(scope) if scope is not None else None,
            },
        ).scalar_one()
    )


def job_view(session: Session, job_id: int, *, user_id: int | None, admin: bool) -> dict[str, Any]:
    """The job as its creator (or the administrator) sees it; 404 for anyone else."""
    row = (
        session.execute(
            text(
                "SELECT id, kind, source, status, stage, done, total, dry_run, created_by, "
                "report, error, created_at, finished_at FROM import_job WHERE id = :id"
            ),
            {"id": job_id},
        )
        .mappings()
        .one_or_none()
    )
    if row is None or (not admin and (user_id is None or row["created_by"] != user_id)):
        raise NotFound("导入任务不存在 / no such import job")
    out = dict(row)
    out["percent"] = round(100.0 * row["done"] / row["total"], 1) if row["total"] else None
    for key in ("created_at", "finished_at"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    return out


def held_records(
    session: Session, *, user_id: int | None, admin: bool, kind: str | None, limit: int
) -> list[dict[str, Any]]:
    """The records imports held aside (in no leaf grid): the administrator's view holds all,
    anyone else's the ones their own imports held."""
    rows = (
        session.execute(
            text(
                """
                SELECT id, kind, source, row_ref, ST_X(geom) AS lon, ST_Y(geom) AS lat,
                       record, reason, job_id, created_at
                FROM import_held
                WHERE (:admin OR created_by = :user_id)
                  AND (CAST(:kind AS text) IS NULL OR kind = :kind)
                ORDER BY id DESC LIMIT :limit
                """
            ),
            {"admin": admin, "user_id": user_id, "kind": kind, "limit": limit},
        )
        .mappings()
        .all()
    )
    return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]


class _Reporter:
    """The job's progress callback: writes stage, done and total through its own session."""

    def __init__(self, status_session: Session, job_id: int, *, live: bool = True) -> None:
        self.session = status_session
        self.job_id = job_id
        self.last = 0.0
        self.live = live  # False: one connection for both (the test app): kept till the end
        self.pending: dict[str, Any] = {}

    def set(self, **values: Any) -> None:
        if not self.live and "status" not in values:
            self.pending.update(values)
            return
        values = {**self.pending, **values}
        self.pending = {}
        sets = ", ".join(
            f"{k} = CAST(:{k} AS jsonb)" if k in ("report", "error") else f"{k} = :{k}"
            for k in values
        )
        self.session.execute(
            text(f"UPDATE import_job SET {sets} WHERE id = :id"), {**values, "id": self.job_id}
        )
        self.session.commit()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last > 0.5:
            self.last = now
            self.set(stage=stage[:30], done=int(done), total=int(total))


def run_job(
    work: Session,
    status: Session,
    job_id: int,
    path: Path,
    *,
    crs: str | None,
    mapping: Mapping[str, str],
    options: import_options.ImportOptions,
    who: audit.Who,
    live: bool = True,
) -> None:
    """Run a queued job's import on ``work`` (its own transaction) and record the outcome
    through ``status``. Never raises: a refusal or an error is the job's ``error``."""
    reporter = _Reporter(status, job_id, live=live)
    row = status.execute(
        text("SELECT kind, scope, created_by FROM import_job WHERE id = :id"), {"id": job_id}
    ).one()
    kind, scope = row[0], (frozenset(row[1]) if row[1] is not None else None)
    reporter.set(status="running", stage="read")
    try:
        try:
            report = import_options.run_import(
                work,
                kind,
                path,
                crs=crs,
                mapping=mapping,
                options=options,
                progress=reporter,
                scope=scope,
                user_id=row[2],
                job_id=job_id,
            )
            if options.dry_run:
                work.rollback()
            else:
                if kind != "households":  # households count themselves as they load
                    refresh_household_counts(work)
                audit.record(
                    work,
                    who,
                    "change",
                    f"import job {job_id}",
                    object_type="import_job",
                    object_id=job_id,
                    detail={"kind": kind, "created": report["created"]},
                )
                work.commit()
        except BaseException:
            work.rollback()
            raise
        if not options.dry_run:
            analyze_imported(work, kind, int(report["created"]))
        reporter.set(status="done", stage="done", report=_json(report), finished_at=_now(status))
    except (AppError, GisError) as exc:
        error = {"code": exc.code, "message": exc.message, **_details(exc)}
        reporter.set(status="failed", error=_json(error), finished_at=_now(status))
    except Exception as exc:  # an unexpected failure still ends the job, named in the log
        LOGGER.exception("import job %s failed", job_id)
        error = {
            "code": "internal",
            "message": f"导入失败 / the import failed ({type(exc).__name__})",
        }
        reporter.set(status="failed", error=_json(error), finished_at=_now(status))


def _details(exc: AppError | GisError) -> dict[str, Any]:
    return {k: v for k, v in (exc.details or {}).items() if k in ("problems", "field")}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _now(session: Session) -> Any:
    return session.execute(text("SELECT now()")).scalar_one()


def start(
    factory: Callable[[], Session],
    job_id: int,
    path: Path,
    *,
    inline: bool,
    cleanup: Path | None = None,
    wrap: Callable[[Callable[[], None]], Callable[[], None]] = lambda f: f,
    **kwargs: Any,
) -> None:
    """Run the job now (``inline``) or on a background thread; ``cleanup`` (the upload's
    directory) is removed afterwards. ``wrap`` puts the run inside the app's context."""

    def body() -> None:
        work, status = factory(), factory()
        try:
            run_job(work, status, job_id, path, live=not inline, **kwargs)
        finally:
            work.close()
            status.close()
            if cleanup is not None:
                shutil.rmtree(cleanup, ignore_errors=True)

    if inline:
        wrap(body)()
    else:
        threading.Thread(target=wrap(body), name=f"import-job-{job_id}", daemon=True).start()

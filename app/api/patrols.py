"""Patrols API: start and stop a patrol, post positions in batches, read tracks, the week's
patrol coverage, a worker's day on the map, and the field-work KPIs with their exports."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from app.api.params import body_fields, int_arg, str_arg
from app.api.visits import at_arg, day_arg, own_worker
from app.auth import current_principal, record_personal_read
from app.auth.policy import field_scope, grid_scope
from app.db import get_session, transaction
from app.errors import NotFound
from app.services import field_kpis as field_kpis_svc
from app.services import patrols as svc
from app.services.visits import TZ

bp = Blueprint("patrols_api", __name__, url_prefix="/api")


def _key(data: dict, name: str) -> dict:  # type: ignore[type-arg]
    if request.headers.get("Idempotency-Key") and not data.get(name):
        return {**data, name: request.headers["Idempotency-Key"]}
    return data


@bp.post("/patrols")
def start():  # type: ignore[no-untyped-def]
    """Start a patrol of the signed-in worker (an open one is answered again, 200)."""
    data = _key(body_fields(), "idempotency_key")
    p = current_principal()
    worker = own_worker(p)
    session = get_session()
    with transaction(session):
        patrol, created = svc.start_patrol(session, data, worker_id=worker, user_id=p.user_id)
    return jsonify({"patrol": patrol, "created": created}), 201 if created else 200


@bp.post("/patrols/<int:patrol_id>/positions")
def positions(patrol_id: int):  # type: ignore[no-untyped-def]
    """A batch of positions of the worker's own patrol (``batch_key``, ``crs``, ``points``:
    ``[{lon, lat, t, accuracy}]``); each stored once, jumps dropped with their reason."""
    data = _key(body_fields(), "batch_key")
    p = current_principal()
    worker = own_worker(p)
    session = get_session()
    with transaction(session):
        answer, created = svc.post_positions(session, patrol_id, data, worker_id=worker)
    return jsonify(answer), 201 if created else 200


@bp.post("/patrols/<int:patrol_id>/stop")
def stop(patrol_id: int):  # type: ignore[no-untyped-def]
    """Stop the worker's own patrol; its track is built."""
    p = current_principal()
    worker = own_worker(p)
    session = get_session()
    with transaction(session):
        patrol = svc.stop_patrol(session, patrol_id, body_fields(), worker_id=worker)
    return jsonify({"patrol": patrol})


@bp.get("/patrols")
def list_patrols():  # type: ignore[no-untyped-def]
    """Patrols in the caller's field scope (``worker``, ``date`` a China-time day)."""
    limit = int_arg("limit", minimum=1, maximum=1000, default=200) or 200
    offset = int_arg("offset", minimum=0, default=0) or 0
    session = get_session()
    p = current_principal()
    result = svc.list_patrols(
        session,
        field_scope(session, p).sql("p", grid_column=None),
        worker_id=int_arg("worker", minimum=1),
        day=day_arg("date"),
        limit=limit,
        offset=offset,
    )
    record_personal_read("list patrols", "patrol", None, ["patrols"])
    return jsonify(result)


@bp.get("/patrols/<int:patrol_id>")
def get_patrol(patrol_id: int):  # type: ignore[no-untyped-def]
    """One patrol with its track (times per vertex) and the positions dropped."""
    result = svc.get_patrol(get_session(), patrol_id, track=True)
    record_personal_read(f"patrol {patrol_id}", "patrol", patrol_id, ["track"])
    return jsonify(result)


def _units():  # type: ignore[no-untyped-def]
    session = get_session()
    p = current_principal()
    scope = field_scope(session, p)
    grids = None if scope.everything else (scope.grid_ids or frozenset())
    if p.role in ("worker", "party_member"):
        grids = grid_scope(session, p) or frozenset()
    return session, p, grids, scope.worker_ids(session)


@bp.get("/patrols/coverage")
def coverage():  # type: ignore[no-untyped-def]
    """Patrol coverage of the week (roads and area within the buffer of the tracks) per worker
    or per grid of a level."""
    group = str_arg("group", max_length=20) or "worker"
    level = int_arg("level", minimum=1, maximum=5)
    session, _p, grids, workers = _units()
    result = svc.coverage(
        session, group=group, level=level, grid_ids=grids, worker_ids=workers, at=at_arg()
    )
    return jsonify(result)


@bp.get("/patrols/map")
def day_map():  # type: ignore[no-untyped-def]
    """A worker's tracks of a day and the roads of their grids not patrolled (GeoJSON, the
    e-map's layer); ``worker`` (default: oneself) and ``date`` (China time, default today)."""
    session = get_session()
    p = current_principal()
    worker = int_arg("worker", minimum=1) or p.worker_id
    if worker is None:
        raise NotFound("须指明网格员 worker / worker not given")
    allowed = field_scope(session, p).worker_ids(session)
    if allowed is not None and worker not in allowed:
        raise NotFound(f"网格员 {worker} 不存在或不在您的范围内 / worker {worker} not found")
    day = day_arg("date") or datetime.now(TZ).date()
    result = svc.day_map(session, worker, day)
    record_personal_read(f"patrol map {worker} {day.isoformat()}", "worker", worker, ["tracks"])
    return jsonify(result)


@bp.get("/field-kpis")
def field_kpis():  # type: ignore[no-untyped-def]
    """Field-work KPIs per worker or per grid of a level: visits due/done/overdue and on-time
    shares, the week's patrol coverage, days checked in (``format`` json, csv or xlsx)."""
    group = str_arg("group", max_length=20) or "worker"
    level = int_arg("level", minimum=1, maximum=5)
    fmt = str_arg("format", max_length=10) or "json"
    session, _p, grids, workers = _units()
    report = field_kpis_svc.field_kpis(
        session, group=group, level=level, grid_ids=grids, worker_ids=workers, at=at_arg()
    )
    if fmt == "json":
        return jsonify(report)
    data, media, suffix = field_kpis_svc.kpi_export(report, fmt)
    record_personal_read("field kpis export", "worker", None, ["names"], kind="export")
    stamp = datetime.now(UTC).astimezone(TZ).strftime("%Y%m%d-%H%M")
    return Response(
        data,
        mimetype=media.split(";")[0],
        headers={
            "Content-Type": media,
            "Content-Disposition": f'attachment; filename="field-kpis-{group}-{stamp}{suffix}"',
        },
    )

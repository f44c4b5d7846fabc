"""Open311 GeoReport v2 (JSON): services, and service requests mapped onto cases."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from app.api.cases import body, count_public_try, limit_anonymous_photos
from app.auth import current_principal
from app.auth.policy import EDITORS, Forbidden, case_scope
from app.db import get_session, transaction
from app.errors import AppError, BadParameter
from app.services import open311 as svc
from app.services import public_cases
from app.services.photos import MAX_BYTES
from app.web.errors import chinese_first
from gis.errors import GisError

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")


@bp.errorhandler(AppError)
@bp.errorhandler(GisError)
def _georeport_error(err: AppError | GisError):  # type: ignore[no-untyped-def]
    # GeoReport clients expect a list of {code, description}: "中文 / English", as elsewhere.
    description = chinese_first(err.code, err.message, err.details.get("param"))
    return jsonify([{"code": err.http_status, "description": description}]), err.http_status


@bp.get("/services.json")
def services():  # type: ignore[no-untyped-def]
    """Every category as a GeoReport service."""
    return jsonify(svc.services(get_session()))


@bp.post("/requests.json")
def post_request():  # type: ignore[no-untyped-def]
    """Create a service request (form-encoded or JSON; an optional ``media`` file)."""
    data = body()
    media = request.files.get("media")
    session = get_session()
    limit_anonymous_photos(session, 1 if media else 0)
    with transaction(session):
        answer, created = svc.create_request(
            session,
            data,
            media=media.read(MAX_BYTES + 1) if media else None,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
    return jsonify(answer), 201 if created else 200


# At most this many codes in one anonymous read.
PUBLIC_MAX_IDS = 20


def _public_read(ids: list[str]) -> list[dict]:  # type: ignore[type-arg]
    """Read requests by their codes as a resident: each try counted, misses 404 alike."""
    if len(ids) > PUBLIC_MAX_IDS:
        raise BadParameter("service_request_id", f"at most {PUBLIC_MAX_IDS} codes at once")
    refund = count_public_try()
    session = get_session()
    found = svc.get_requests(session, ids=ids, base_url=request.host_url.rstrip("/"))
    if len(found) < len({public_cases.normalize(i) for i in ids}):
        raise public_cases.not_found()
    refund()
    g.audit_skip = True
    session.commit()
    return found


@bp.get("/requests.json")
def get_requests():  # type: ignore[no-untyped-def]
    """Service requests: by service_request_id (comma list), or filtered by code, dates, status.

    Without signing in (and for roles other than the centre's) only by service_request_id:
    one's own codes."""
    ids = [i for i in (request.args.get("service_request_id") or "").split(",") if i]
    if ids:
        return jsonify(_public_read(ids))
    if current_principal().role not in EDITORS:
        raise Forbidden(
            "未登录只能按事件编号查询 / without signing in, requests are read by their "
            "service_request_id only"
        )
    return jsonify(
        svc.get_requests(
            get_session(),
            service_code=request.args.get("service_code"),
            start_date=request.args.get("start_date"),
            end_date=request.args.get("end_date"),
            status=request.args.get("status"),
            base_url=request.host_url.rstrip("/"),
            scope=case_scope(get_session(), current_principal()),
        )
    )


@bp.get("/requests/<code>.json")
def get_request(code: str):  # type: ignore[no-untyped-def]
    """One service request by its public code (as a one-element list, as the standard has it)."""
    return jsonify(_public_read([code]))


@bp.get("/discovery.json")
def discovery():  # type: ignore[no-untyped-def]
    """The GeoReport discovery document of this endpoint."""
    base = request.host_url.rstrip("/") + "/open311/v2/"
    return jsonify(
        {
            "changeset": "2026-11-22T00:00:00Z",
            "contact": "网格化服务管理中心",
            "key_service": "",
            "endpoints": [
                {
                    "specification": "http://wiki.open311.org/GeoReport_v2",
                    "url": base,
                    "changeset": "2026-11-22T00:00:00Z",
                    "type": "production",
                    "formats": ["application/json"],
                }
            ],
        }
    )

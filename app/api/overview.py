"""The 一张图 overview and the ledgers (台账) as JSON, held to the caller's grids."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.params import bool_arg, int_arg, str_arg
from app.auth import current_principal, record_personal_read
from app.auth.policy import case_scope, grid_scope, sees_tags
from app.db import get_session
from app.services import ledgers
from app.services import overview as svc

bp = Blueprint("overview_api", __name__, url_prefix="/api")


@bp.get("/overview")
def overview():  # type: ignore[no-untyped-def]
    """The overview of the caller's grids: grids, households, workers, party members, service
    points and coverage, cameras, cases and the grids with the most overdue cases."""
    session, p = get_session(), current_principal()
    return jsonify(svc.overview(session, grid_scope(session, p), case_scope(session, p)))


def _paging() -> dict[str, object]:
    return {
        "limit": int_arg("limit", minimum=1, maximum=200, default=50),
        "offset": int_arg("offset", minimum=0, default=0),
        "sort": str_arg("sort", max_length=40),
        "order": str_arg("order", max_length=10),
    }


def _grids() -> list[int] | None:
    session = get_session()
    return ledgers.grid_filter(
        session, grid_scope(session, current_principal()), int_arg("grid", minimum=1)
    )


@bp.get("/ledgers/households")
def households():  # type: ignore[no-untyped-def]
    """The household ledger (grid, tag, linked, q; sort, order, limit, offset); names and
    phones masked, tags for those responsible for the households."""
    p = current_principal()
    tags = sees_tags(p)
    result = ledgers.households(
        get_session(),
        _grids(),
        linked_member_id=(p.worker_id or -1) if p.role == "party_member" else None,
        with_tags=tags,
        tag=ledgers.check_tag(str_arg("tag", max_length=40), tags),
        linked=bool_arg("linked", default=None),
        q=str_arg("q", max_length=100),
        **_paging(),  # type: ignore[arg-type]
    )
    record_personal_read(
        f"household ledger ({len(result['items'])})",
        "household",
        None,
        ["address", "head_name(masked)", "head_phone(masked)"] + (["tags"] if tags else []),
    )
    return jsonify(result)


@bp.get("/ledgers/people")
def people():  # type: ignore[no-untyped-def]
    """The population ledger by grid (level, grid, tag; sort, order, limit, offset)."""
    p = current_principal()
    tags = sees_tags(p)
    return jsonify(
        ledgers.population(
            get_session(),
            _grids(),
            level=int_arg("level", minimum=1, maximum=5, default=4) or 4,
            with_tags=tags,
            tag=ledgers.check_tag(str_arg("tag", max_length=40), tags),
            **_paging(),  # type: ignore[arg-type]
        )
    )


@bp.get("/ledgers/workers")
def workers():  # type: ignore[no-untyped-def]
    """The worker and party-member ledger (grid, role, on_duty, q; sort, order, limit, offset)."""
    return jsonify(
        ledgers.workers(
            get_session(),
            _grids(),
            role=str_arg("role", max_length=40),
            on_duty=bool_arg("on_duty", default=None),
            q=str_arg("q", max_length=100),
            **_paging(),  # type: ignore[arg-type]
        )
    )


@bp.get("/ledgers/service-points")
def service_points():  # type: ignore[no-untyped-def]
    """The service-point ledger (grid, kind, status, q; sort, order, limit, offset)."""
    return jsonify(
        ledgers.service_points(
            get_session(),
            _grids(),
            kind=str_arg("kind", max_length=40),
            status=str_arg("status", max_length=40),
            q=str_arg("q", max_length=100),
            **_paging(),  # type: ignore[arg-type]
        )
    )


@bp.get("/ledgers/cameras")
def cameras():  # type: ignore[no-untyped-def]
    """The camera ledger (grid, kind, analytics, q; sort, order, limit, offset)."""
    return jsonify(
        ledgers.cameras(
            get_session(),
            _grids(),
            kind=str_arg("kind", max_length=40),
            analytics=bool_arg("analytics", default=None),
            q=str_arg("q", max_length=100),
            **_paging(),  # type: ignore[arg-type]
        )
    )

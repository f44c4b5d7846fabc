"""Grid API: the grids as GeoJSON, one grid with its notice board, households of a grid."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.params import bbox_arg, int_arg
from app.auth import current_principal, record_personal_read
from app.auth.policy import grid_scope, grid_view, outline_scope, sees_tags
from app.db import get_session
from app.services import grids as svc

bp = Blueprint("grids_api", __name__, url_prefix="/api/grids")


@bp.get("")
def list_grids():  # type: ignore[no-untyped-def]
    """List current grids (filters: level, parent, bbox): the caller's grids, and the outlines
    of the grids above them."""
    session, p = get_session(), current_principal()
    return jsonify(
        svc.list_grids(
            session,
            level=int_arg("level", minimum=1, maximum=5),
            parent_id=int_arg("parent", minimum=1),
            bbox=bbox_arg(),
            scope=grid_scope(session, p),
            outline=outline_scope(session, p),
        )
    )


@bp.get("/<int:grid_id>")
def get_grid(grid_id: int):  # type: ignore[no-untyped-def]
    """One grid with its notice board, ancestors and children (a grid above the caller's: its
    outline only)."""
    session = get_session()
    view = grid_view(session, current_principal(), grid_id)
    return jsonify(svc.grid_feature(session, grid_id, outline=view == "outline"))


@bp.get("/<int:grid_id>/households")
def grid_households(grid_id: int):  # type: ignore[no-untyped-def]
    """Households of a grid and its descendants (personal data masked)."""
    limit = int_arg("limit", minimum=1, maximum=5000, default=500)
    offset = int_arg("offset", minimum=0, default=0)
    p = current_principal()
    tags = sees_tags(p)
    result = svc.households_in_grid(
        get_session(),
        grid_id,
        limit=limit,
        offset=offset,
        linked_member_id=(p.worker_id or -1) if p.role == "party_member" else None,
        with_tags=tags,
    )
    # Addresses (and, for those responsible, sensitive tags) are personal data: the read is
    # logged with what was shown, never the values.
    record_personal_read(
        f"list households ({len(result['features'])})",
        "grid",
        grid_id,
        ["address", "head_name(masked)", "head_phone(masked)"] + (["tags"] if tags else []),
    )
    return jsonify(result)

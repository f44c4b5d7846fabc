"""Automatic division of a grid (户数相近、地域相连) and 片区 patches with party members.

POST /api/grids/<id>/partition  {"k" | "target_size" | "size_range", "seed"?, "roads"?,
                                 "dry_run"? (default true), "names"?, "base_version"?,
                                 "replace_children"?}
POST /api/grids/<id>/patches    {"members"?, "size_range"? (default [5, 10]), "seed"?, "roads"?,
                                 "dry_run"? (default true), "base_version"?, "replace_children"?}

``roads``: true (default) uses the configured road layer, false none, or inline GeoJSON lines.
A dry run answers 200 with the proposal; a commit answers 201 with the new grids and the
recorded change (``change.id``: undo it with POST /api/grids/changes/<id>/undo).
"""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, current_app, jsonify

from app.auth import current_principal
from app.auth.policy import worker_in_scope
from app.db import get_session, transaction
from app.errors import BadParameter, NotFound
from app.params import bool_field, int_field, json_body
from app.services import partition as svc

bp = Blueprint("partition_api", __name__, url_prefix="/api/grids")


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadParameter(name, f"{value!r} is not a finite number")
    if value <= 0:
        raise BadParameter(name, f"{value} must be positive")
    return float(value)


def _range(body: dict[str, Any], name: str) -> tuple[float, float] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise BadParameter(name, f"{value!r} must be [low, high]")
    low, high = (_positive(v, name) for v in value)
    if low > high:
        raise BadParameter(name, f"low {low:g} exceeds high {high:g}")
    return low, high


def _actor() -> str:
    # The signed-in account, as grid edits record it (never a name the request claims).
    return current_principal().label[:80]


def _roads(body: dict[str, Any]) -> list:
    return svc.roads(body.get("roads", True), current_app.config.get("ROADS_FILE"))


def _size_request(body: dict[str, Any]) -> dict[str, Any]:
    given = [name for name in ("k", "target_size", "size_range") if body.get(name) is not None]
    if len(given) != 1:
        raise BadParameter(
            "k",
            "give exactly one of k, target_size or size_range (e.g. k=3 or size_range=[50, 80])",
        )
    target = body.get("target_size")
    return {
        "k": int_field(body, "k", minimum=1, maximum=svc.MAX_PARTS, strict=True),
        "target_size": None if target is None else _positive(target, "target_size"),
        "size_range": _range(body, "size_range"),
    }


def _names(body: dict[str, Any]) -> list[str] | None:
    """The names of the new grids, if given: a list of non-empty texts (their count is checked
    against the part count by the service)."""
    names = body.get("names")
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise BadParameter("names", "give a list of non-empty names, one per part")
    return names


@bp.post("/<int:grid_id>/partition")
def partition(grid_id: int):  # type: ignore[no-untyped-def]
    """Propose (dry run, the default) or commit a balanced, contiguous division of a grid."""
    body = json_body()
    # Every field is checked before a division is searched (that takes seconds), in a dry run
    # too: a wrong type is a 400, never taken for true or false.
    sizes = _size_request(body)
    seed = int_field(body, "seed", minimum=0, strict=True) or 0
    names = _names(body)
    base_version = int_field(body, "base_version", minimum=1, strict=True)
    replace_children = bool_field(body, "replace_children", default=False, strict=True)
    dry_run = bool_field(body, "dry_run", default=True, strict=True)
    roads = _roads(body)
    session = get_session()
    if dry_run:
        grid, proposal, _ = svc.propose(
            session, grid_id, seed=seed, roads=roads, names=names, **sizes
        )
        result = svc.proposal_geojson(grid, proposal, names=names)
        result["dry_run"] = True
        return jsonify(result)
    with transaction(session):
        result = svc.commit(
            session,
            grid_id,
            actor=_actor(),
            seed=seed,
            roads=roads,
            names=names,
            base_version=base_version,
            replace_children=replace_children,
            **sizes,
        )
    return jsonify(result), 201


@bp.post("/<int:grid_id>/patches")
def patches(grid_id: int):  # type: ignore[no-untyped-def]
    """Cut a micro-grid into 片区 of 5-10 households with one party member each."""
    body = json_body()
    members = body.get("members")
    if members is not None and (
        not isinstance(members, list)
        or not all(isinstance(m, int) and not isinstance(m, bool) for m in members)
    ):
        raise BadParameter("members", "give a list of worker ids")
    size_range = _range(body, "size_range") or (5.0, 10.0)
    seed = int_field(body, "seed", minimum=0, strict=True) or 0
    base_version = int_field(body, "base_version", minimum=1, strict=True)
    replace_children = bool_field(body, "replace_children", default=False, strict=True)
    dry_run = bool_field(body, "dry_run", default=True, strict=True)
    roads = _roads(body)
    session = get_session()
    if members is not None:
        p = current_principal()
        elsewhere = sorted({m for m in members if not worker_in_scope(session, p, m)})
        if elsewhere:  # another street's people are not the caller's to name
            raise NotFound(f"workers {elsewhere} do not exist", members=elsewhere)
    if dry_run:
        return jsonify(
            svc.propose_patches(
                session, grid_id, member_ids=members, size_range=size_range, seed=seed, roads=roads
            )
        )
    with transaction(session):
        result = svc.commit_patches(
            session,
            grid_id,
            actor=_actor(),
            member_ids=members,
            size_range=size_range,
            seed=seed,
            roads=roads,
            base_version=base_version,
            replace_children=replace_children,
        )
    return jsonify(result), 201

"""Locate API: which micro-grid and which person own a point, one point or many."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from app.api.params import float_arg, int_arg, str_arg
from app.auth import ONE_TRIP, current_principal
from app.auth.policy import grid_scope, in_scope, sees_every_grid
from app.db import get_session, run_read, run_read_dbapi
from app.errors import AppError, BadParameter, NotFound
from app.privacy import mask_name, mask_phone
from app.services import locate as svc
from app.web.errors import chinese_first
from gis.errors import GisError

bp = Blueprint("locate_api", __name__, url_prefix="/api/locate")

MAX_BATCH_POINTS = 1_000_000


def _xy() -> tuple[float, float]:
    """Read the point: lon/lat, or x/y (easting/northing for a projected CRS)."""
    for xname, yname in (("lon", "lat"), ("x", "y")):
        x, y = float_arg(xname), float_arg(yname)
        if x is not None or y is not None:
            if x is None or y is None:
                missing = xname if x is None else yname
                raise BadParameter(missing, f"give both {xname} and {yname}")
            return x, y
    raise BadParameter("lon", "give the point as lon=…&lat=… (or x=…&y=… with a projected crs)")


def _locate_args() -> tuple[float, float, float, str | None, str | None]:
    x, y = _xy()
    tolerance = float_arg("tolerance", minimum=0, maximum=500, default=svc.NEAREST_TOLERANCE_M)
    return x, y, tolerance, str_arg("crs", max_length=60), str_arg("category", max_length=40)


def _read_with_session(lookup: dict) -> Any:
    """The session look-up and the locate's first read in one statement (``auth.ONE_TRIP``);
    None for parameters the view refuses (it then says why, after the usual look-up)."""
    try:
        g.locate_args = x, y, _tolerance, crs, _category = _locate_args()
        return run_read_dbapi(lambda db: svc.locate_with_session(db, x, y, crs, lookup))
    except (AppError, GisError):
        return None


ONE_TRIP["locate_api.locate"] = _read_with_session


@bp.get("")
def locate():  # type: ignore[no-untyped-def]
    """Locate one point: its grid chain, owner and fallback (params lon, lat, crs, category)."""
    prefetched = g.pop("prefetched", None)
    args = g.pop("locate_args", None)
    x, y, tolerance, crs, category = args if prefetched is not None else _locate_args()
    result = run_read_dbapi(
        lambda db: svc.locate_point(
            db, x, y, crs, category=category, tolerance_m=tolerance, prefetched=prefetched
        )
    )
    # The micro-grid, or for a point in a hole of them the lowest grid covering it.
    _need_own(result.get("grid") or (result["chain"][-1] if result.get("chain") else None))
    return jsonify(result)


def _need_own(grid: dict | None) -> None:
    """A point is located (with its owner's phone) only in the caller's grids: 404 elsewhere."""
    p = current_principal()
    if sees_every_grid(p):
        return
    if grid is None or not in_scope(get_session(), p, grid["id"]):
        raise NotFound("该位置不在您负责的网格内 / the point is not in your grids")


def _masked(entry: dict) -> dict:
    """A neighbour outside the caller's grids: its people's names and phones masked."""

    def mask(person: dict | None) -> dict | None:
        if not person or person.get("kind") != "worker":
            return person
        return {
            **person,
            "name": mask_name(person.get("name")),
            "phone": mask_phone(person.get("phone")),
        }

    out = {**entry, "owner": mask(entry.get("owner"))}
    if "fallback" in entry:
        out["fallback"] = [mask(f) for f in entry["fallback"] or []]
    if "next" in entry:
        out["next"] = mask(entry["next"])
    if (entry.get("network") or {}).get("person"):  # a departmental grid's person
        person = entry["network"]["person"]
        out["network"] = {
            **entry["network"],
            "person": {"name": mask_name(person["name"]), "phone": mask_phone(person["phone"])},
        }
    return out


@bp.get("/neighbours")
def neighbours():  # type: ignore[no-untyped-def]
    """Leaf grids near a point other than its own, with their owners (for a one-step transfer)."""
    x, y = _xy()
    crs = str_arg("crs", max_length=60)
    given = int_arg("grid", minimum=1)
    within = float_arg("within", minimum=0, maximum=1000, default=50.0)

    def read(session):  # type: ignore[no-untyped-def]
        located = svc.locate_point(session, x, y, crs)
        grid_id = given or (located["grid"]["id"] if located["grid"] else 0)
        point = located["point"]
        return {
            "point": point,
            "grid_id": grid_id or None,
            "within_m": within,
            "neighbours": svc.neighbour_owners(
                session, grid_id, point["lon"], point["lat"], within_m=within
            ),
        }

    result = run_read(read)
    # The point's own grid must be the caller's; a neighbour across the caller's boundary is
    # named (the target of a transfer), its people's names and phones masked.
    _need_own({"id": result["grid_id"]} if result["grid_id"] else None)
    session, p = get_session(), current_principal()
    result["neighbours"] = [
        n if in_scope(session, p, n["grid"]["id"]) else _masked(n) for n in result["neighbours"]
    ]
    return jsonify(result)


def _body_format() -> str:
    fmt = str_arg("format")
    if fmt:
        if fmt not in ("geojson", "csv"):
            raise BadParameter("format", f"'{fmt}' is not geojson or csv")
        return fmt
    ctype = (request.mimetype or "").lower()
    return "csv" if ctype in ("text/csv", "application/csv", "text/plain") else "geojson"


@bp.post("/batch")
def batch():  # type: ignore[no-untyped-def]
    """Locate many points (GeoJSON or CSV body, crs= names their CRS); JSON or CSV back."""
    ids, x, y, named_crs = svc.parse_points(request.get_data(), _body_format())
    if x.size > MAX_BATCH_POINTS:
        raise BadParameter(
            "body", f"{x.size} points; at most {MAX_BATCH_POINTS} per request (use the CLI)"
        )
    crs = str_arg("crs", max_length=60) or named_crs
    result = svc.locate_batch(get_session(), x, y, crs, category=str_arg("category", max_length=40))
    out = str_arg("output") or (
        "csv" if "text/csv" in (request.headers.get("Accept") or "") else "json"
    )
    # Owners of points outside the caller's grids: named, their names and phones masked.
    scope = grid_scope(get_session(), current_principal())
    if out == "csv":
        buf = io.StringIO()
        svc.write_csv(result, buf, ids, scope=scope)
        return Response(
            buf.getvalue(), mimetype="text/csv", headers={"X-Located": str(len(result))}
        )
    if out != "json":
        raise BadParameter("output", f"'{out}' is not json or csv")
    records = []
    said: dict[str, str] = {}  # each distinct refusal translated once
    for i in range(len(result)):
        rec = result.record(i)
        if rec.get("error"):
            why = rec["error"]
            rec["error"] = said.setdefault(why, chinese_first("bad_coordinates", why))
        grid = rec.get("grid") or rec.get("ancestor")
        if scope is not None and not (grid and grid["id"] in scope):
            rec = _masked(rec)
        if ids is not None:
            rec["id"] = ids[i]
        records.append(rec)
    return jsonify(
        {"crs": result.crs, "count": len(result), "counts": result.counts(), "results": records}
    )

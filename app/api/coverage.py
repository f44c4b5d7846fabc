"""Service-circle coverage: figures, uncovered places, circles, recommended and accepted sites."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app.auth import current_principal
from app.auth.policy import grid_scope, in_scope, scoped_grid
from app.db import get_session, transaction
from app.errors import BadParameter, NotFound
from app.params import bool_arg, bool_field, float_arg, int_arg, int_field, json_body, str_field
from app.services import coverage as svc

bp = Blueprint("coverage_api", __name__, url_prefix="/api/coverage")


def _grid(given: int | None) -> int | None:
    """The grid a figure covers: the one given (if it is the caller's), else the caller's own."""
    return scoped_grid(get_session(), current_principal(), given)


@bp.get("")
def report():  # type: ignore[no-untyped-def]
    """Coverage overall and per grid (radius_m, level, grid, include_planned, area, format)."""
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "geojson"):
        raise BadParameter("format", f"'{fmt}' is neither 'json' nor 'geojson'")
    return jsonify(
        svc.coverage_report(
            get_session(),
            radius_m=float_arg("radius_m"),
            level=int_arg("level", minimum=1, maximum=5, default=3),  # type: ignore[arg-type]
            grid_id=_grid(int_arg("grid", minimum=1)),
            include_planned=bool_arg("include_planned"),
            with_area=bool_arg("area", default=True),
            geometry=fmt == "geojson",
        )
    )


@bp.get("/uncovered")
def uncovered():  # type: ignore[no-untyped-def]
    """Uncovered households (points and counts only) and the uncovered area, as GeoJSON."""
    raw = request.args.get("layers", "households,area")
    layers = tuple(x.strip() for x in raw.split(",") if x.strip())
    unknown = [x for x in layers if x not in ("households", "area")]
    if unknown or not layers:
        raise BadParameter("layers", f"'{raw}': choose from households, area")
    return jsonify(
        svc.uncovered(
            get_session(),
            radius_m=float_arg("radius_m"),
            grid_id=_grid(int_arg("grid", minimum=1)),
            include_planned=bool_arg("include_planned"),
            layers=layers,
        )
    )


@bp.get("/circles")
def circles():  # type: ignore[no-untyped-def]
    """Each serving point's circle, true to its radius on the ground, as GeoJSON."""
    return jsonify(
        svc.circles(
            get_session(),
            radius_m=float_arg("radius_m"),
            include_planned=bool_arg("include_planned"),
            scope=grid_scope(get_session(), current_principal()),
        )
    )


@bp.get("/presets")
def presets():  # type: ignore[no-untyped-def]
    """The radius presets: the 1 km circle and the five-minute walk."""
    cfg = current_app.config
    return jsonify(
        {
            "one_km_m": float(cfg["SERVICE_RADIUS_M"]),
            "five_minute_m": float(cfg["FIVE_MINUTE_RADIUS_M"]),
        }
    )


def _number(body: dict[str, Any], name: str, default: float | None = None) -> float | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadParameter(name, f"{value!r} is not a finite number")
    return float(value)


@bp.post("/recommend")
def recommend():  # type: ignore[no-untyped-def]
    """Choose k new sites that newly cover the most households (existing points stay)."""
    body = json_body(required=True)
    k = int_field(body, "k", strict=True)
    if k is None:
        raise BadParameter("k", "how many new sites? give k")
    candidates = None
    if body.get("candidates") is not None:
        candidates = svc.parse_candidates(body["candidates"], str_field(body, "crs"))
    max_candidates = int_field(body, "max_candidates", strict=True)  # its range: svc.recommend
    return jsonify(
        svc.recommend(
            get_session(),
            k=k,
            radius_m=_number(body, "radius_m"),
            new_radius_m=_number(body, "new_radius_m"),
            candidates=candidates,
            source=str_field(body, "source", default="households"),
            grid_id=_grid(int_field(body, "grid", strict=True)),
            include_planned=bool_field(body, "include_planned", default=False, strict=True),
            method=str_field(body, "method", default="auto"),
            weight=str_field(body, "weight", default="households"),
            spacing_m=_number(body, "spacing_m"),
            max_candidates=1000 if max_candidates is None else max_candidates,
            default_radius_m=float(current_app.config["SERVICE_RADIUS_M"]),
        )
    )


@bp.post("/accept")
def accept():  # type: ignore[no-untyped-def]
    """Make a recommended site a planned service point."""
    body = json_body(required=True)
    lon, lat = _number(body, "lon"), _number(body, "lat")
    if lon is None or lat is None:
        raise BadParameter("lon" if lon is None else "lat", "the site needs lon and lat")
    session = get_session()
    with transaction(session):
        feature = svc.accept_site(
            session,
            lon=lon,
            lat=lat,
            name=str_field(body, "name", max_length=120),
            kind=str_field(body, "kind", default="station"),
            radius_m=_number(body, "radius_m", float(current_app.config["SERVICE_RADIUS_M"])),  # type: ignore[arg-type]
            crs=str_field(body, "crs"),
        )
        if not in_scope(session, current_principal(), feature["properties"]["grid_id"]):
            # Rolled back with the transaction: a site goes only into the caller's grids.
            raise NotFound("该位置不在您负责的网格内 / the site is not in your grids")
    return jsonify(feature), 201

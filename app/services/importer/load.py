"""Import one file of a given kind: read it, then hand it to that kind's loader."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from app.errors import BadParameter
from app.services import tables
from app.services.importer.basemap import import_basemap
from app.services.importer.common import BASEMAP_KIND, KINDS, SCOPED_KINDS, Progress, no_progress
from app.services.importer.grids import import_grids
from app.services.importer.people import import_assignments, import_departments, import_workers
from app.services.importer.points import import_cameras, import_households, import_service_points


def import_file(
    session: Session,
    kind: str,
    path: str | Path,
    *,
    crs: str | None = None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress = no_progress,
    scope: frozenset[int] | None = None,
    feature_kind: str | None = None,
) -> int:
    """Import one file of the given kind; return the number of records loaded.

    ``scope`` (the importing account's grids; None: every grid) admits only records that fall
    in those grids — households, cameras and service points by location, assignments by grid —
    and refuses the whole file otherwise, naming each record. Other kinds take no scope.
    ``feature_kind`` (kind ``basemap`` only) gives every row that basemap kind (road, building,
    water, green, rail) instead of the file's ``kind`` column.
    """
    if kind == BASEMAP_KIND:
        if scope is not None:
            raise BadParameter("kind", "basemap features belong to no grid: they cannot be scoped")
        frame = tables.read_records(path, crs=crs, mapping=mapping, need_geometry=True)
        progress("read", len(frame), len(frame))
        return import_basemap(session, frame, source=Path(path).name, kind=feature_kind)
    if kind not in KINDS:
        raise BadParameter("kind", f"unknown kind '{kind}' (use {', '.join(KINDS)})")
    if scope is not None and kind not in SCOPED_KINDS:
        raise BadParameter("kind", f"'{kind}' records belong to no grid: they cannot be scoped")
    source = Path(path).name
    spatial = kind in ("grids", "households", "service_points", "cameras")
    frame = tables.read_records(path, crs=crs, mapping=mapping, need_geometry=spatial)
    progress("read", len(frame), len(frame))
    return load_frame(session, kind, frame, source=source, progress=progress, scope=scope)


def load_frame(
    session: Session,
    kind: str,
    frame: pd.DataFrame,
    *,
    source: str,
    progress: Progress = no_progress,
    scope: frozenset[int] | None = None,
    feature_kind: str | None = None,
    fallback_grid_ids: np.ndarray | None = None,
) -> int:
    """Hand a frame already read to its kind's loader; return the number of records loaded.

    ``fallback_grid_ids`` (households and cameras; -1 for none) places a point that lies in no
    leaf grid in the given grid instead of refusing it (``options.run_import``'s ``lowest``)."""
    if kind == BASEMAP_KIND:
        if scope is not None:
            raise BadParameter("kind", "basemap features belong to no grid: they cannot be scoped")
        return import_basemap(session, frame, source=source, kind=feature_kind)
    if scope is not None and kind not in SCOPED_KINDS:
        raise BadParameter("kind", f"'{kind}' records belong to no grid: they cannot be scoped")
    if fallback_grid_ids is not None and kind in ("households", "cameras"):
        placer = import_households if kind == "households" else import_cameras
        return placer(
            session,
            frame,
            source=source,
            progress=progress,
            scope=scope,
            fallback_grid_ids=fallback_grid_ids,
        )
    loader = {
        "departments": import_departments,
        "grids": import_grids,
        "workers": import_workers,
        "assignments": import_assignments,
        "households": import_households,
        "service_points": import_service_points,
        "cameras": import_cameras,
    }[kind]
    if kind in SCOPED_KINDS:
        return loader(session, frame, source=source, progress=progress, scope=scope)
    return loader(session, frame, source=source, progress=progress)

"""The sample data set: its folder, its files, loading it, telling whether data is loaded."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Grid
from app.services.importer.common import BASEMAP_KIND, KINDS, Progress, no_progress
from app.services.importer.load import import_file
from app.services.importer.recount import refresh_household_counts

SAMPLE_BASEMAP = (
    # (file, basemap kind for every row or None for the file's own column, field mapping)
    ("roads.geojson", "road", {"class": "kind"}),
    ("basemap.geojson", None, {}),
)


SAMPLE_DIR = Path(__file__).resolve().parents[3] / "data" / "sample_boundaries"


SAMPLE_FILES = {
    "departments": "departments.csv",
    "grids": "grids.geojson",
    "workers": "workers.csv",
    "assignments": "assignments.csv",
    "households": "households.csv",
    "service_points": "service_points.geojson",
    "cameras": "cameras.geojson",
}


def load_directory(
    session: Session,
    folder: str | Path = SAMPLE_DIR,
    *,
    crs: str | None = None,
    progress: Progress = no_progress,
) -> dict[str, int]:
    """Load every known file of a folder (the sample layout) in dependency order, in one transaction."""
    folder = Path(folder)
    counts: dict[str, int] = {}
    for kind in KINDS:
        path = folder / SAMPLE_FILES[kind]
        if path.exists():
            counts[kind] = import_file(session, kind, path, crs=crs, progress=progress)
    for name, kind, mapping in SAMPLE_BASEMAP:
        path = folder / name
        if path.exists():
            counts[f"basemap {name}"] = import_file(
                session,
                BASEMAP_KIND,
                path,
                crs=crs,
                mapping=mapping,
                feature_kind=kind,
                progress=progress,
            )
    refresh_household_counts(session)
    return counts


def is_loaded(session: Session) -> bool:
    """Tell whether any grid is loaded."""
    return session.scalar(select(Grid.id).limit(1)) is not None

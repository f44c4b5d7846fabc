"""What every import kind shares: the kinds, progress reports, row references, COPY."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from app.errors import BadParameter

LOGGER = logging.getLogger(__name__)


Progress = Callable[[str, int, int], None]


KINDS = (
    "departments",
    "grids",
    "workers",
    "assignments",
    "households",
    "service_points",
    "cameras",
)


# The project's own basemap (roads, buildings, water …): a CLI import (`gridgov import basemap`),
# not one of the HTTP import kinds.
BASEMAP_KIND = "basemap"


# Road classes as files name them → the basemap's classes (which set the zoom they appear at).
ROAD_CLASSES = {
    "main": "primary",
    "arterial": "primary",
    "lane": "minor",
    "residential": "minor",
    "service": "minor",
    "street": "minor",
}


LINE_KINDS = ("road", "rail")


COPY_CHUNK = 100_000


def no_progress(stage: str, done: int, total: int) -> None:
    return None


def row_where(frame: pd.DataFrame, i: int) -> str:
    return (
        f"feature {i + 1}"
        if isinstance(frame, gpd.GeoDataFrame) and "lon" not in frame
        else f"row {i + 2}"
    )


def _require(frame: pd.DataFrame, source: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadParameter(
            "columns",
            f"{source}: missing column(s) {', '.join(missing)} (found {', '.join(map(str, frame.columns))}); "
            "use the field mapping option to name them",
        )


def _str(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


# Kinds whose every record falls in a grid: an import of them can be held to some grids.
SCOPED_KINDS = ("assignments", "households", "service_points", "cameras")


OUTSIDE_SCOPE = "在您负责的网格之外 / outside your grids"


def _text_col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([None] * len(frame), dtype=object)
    col = frame[name].astype(str).str.strip()
    return col.where(col != "", None)


def copy_frame(
    session: Session, table: str, frame: pd.DataFrame, *, progress: Progress = no_progress
) -> None:
    """COPY a frame into a table in chunks, inside the session's transaction."""
    raw = session.connection().connection.driver_connection
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    total = len(frame)
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY \"{table}\" ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy,
    ):
        for start in range(0, total, COPY_CHUNK):
            buf = io.StringIO()
            frame.iloc[start : start + COPY_CHUNK].to_csv(
                buf, index=False, header=False, na_rep="\\N"
            )
            copy.write(buf.getvalue())
            progress("copied", min(start + COPY_CHUNK, total), total)

"""The hierarchy rule is one rule: a grid drawn in the editor and the same grid in an import file
are refused or accepted alike, at the tolerance's edge too (outside the parent, overlapping a
sibling)."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box

from app.errors import ImportRejected
from app.services import grid_edit, importer
from gis.metric import polygon_area_m2
from gis.validate import HIERARCHY_TOLERANCE_M2, GeometryRejected

# A parent of about 1 km² far from every other grid, and children of about 100 m × 110 m.
X0, Y0 = 100.0, 30.0
PARENT = box(X0, Y0, X0 + 0.01, Y0 + 0.01)
EDGE = X0 + 0.01  # the parent's east edge
LAT_SPAN = 0.001


def _spike(x: float, area_m2: float, sign: float) -> float:
    """The longitude of a triangle's apex beyond ``x`` (east when ``sign`` is 1) whose base is
    ``LAT_SPAN`` on the meridian ``x`` and whose area is ``area_m2``."""
    one = Polygon([(x, Y0 + 0.005), (x + sign * 1e-6, Y0 + 0.0055), (x, Y0 + 0.005 + LAT_SPAN)])
    return x + sign * 1e-6 * area_m2 / polygon_area_m2(one)


def _spiked(x: float, area_m2: float) -> Polygon:
    """A child about 100 m wide whose east edge is the meridian ``x`` but for a sliver of
    ``area_m2`` beyond it."""
    apex = _spike(x, area_m2, 1.0)
    south, north = Y0 + 0.005, Y0 + 0.005 + LAT_SPAN
    return Polygon(
        [(x - 0.001, south), (x, south), (apex, Y0 + 0.0055), (x, north), (x - 0.001, north)]
    )


# A sibling east of the meridian X0 + 0.002, for the child west of it to poke into.
SIBLING = box(X0 + 0.002, Y0 + 0.005, X0 + 0.003, Y0 + 0.005 + LAT_SPAN)


def _editor_accepts(session, children: list[Polygon]) -> bool:  # type: ignore[no-untyped-def]
    savepoint = session.begin_nested()
    try:
        top = grid_edit.create_grid(
            session, PARENT, parent_id=None, name="边界测试街道", actor="test", code="HRULE"
        )
        parent_id = top["features"][0]["id"]
        for i, child in enumerate(children):
            grid_edit.create_grid(session, child, parent_id=parent_id, name=f"子{i}", actor="test")
        return True
    except GeometryRejected:
        return False
    finally:
        savepoint.rollback()


def _importer_accepts(session, children: list[Polygon]) -> bool:  # type: ignore[no-untyped-def]
    frame = gpd.GeoDataFrame(
        {
            "code": ["HRULE", *[f"HRULE-{i:02d}" for i in range(len(children))]],
            "name": ["边界测试街道", *[f"子{i}" for i in range(len(children))]],
            "level": [1, *[2] * len(children)],
            "parent_code": ["", *["HRULE"] * len(children)],
        },
        geometry=[PARENT, *children],
        crs="EPSG:4326",
    )
    savepoint = session.begin_nested()
    try:
        importer.import_grids(session, frame, source="grids.geojson")
        return True
    except ImportRejected:
        return False
    finally:
        savepoint.rollback()


@pytest.mark.parametrize("share", [0.5, 0.9, 1.1, 2.0])
def test_a_child_sticking_out_of_its_parent_is_judged_alike(db_session, share: float) -> None:  # type: ignore[no-untyped-def]
    child = _spiked(EDGE, share * HIERARCHY_TOLERANCE_M2)
    assert polygon_area_m2(child.difference(PARENT)) == pytest.approx(
        share * HIERARCHY_TOLERANCE_M2, rel=0.02
    )
    expected = share < 1
    assert _editor_accepts(db_session, [child]) is expected
    assert _importer_accepts(db_session, [child]) is expected


@pytest.mark.parametrize("share", [0.5, 0.9, 1.1, 2.0])
def test_siblings_overlapping_are_judged_alike(db_session, share: float) -> None:  # type: ignore[no-untyped-def]
    child = _spiked(X0 + 0.002, share * HIERARCHY_TOLERANCE_M2)
    assert polygon_area_m2(child.intersection(SIBLING)) == pytest.approx(
        share * HIERARCHY_TOLERANCE_M2, rel=0.02
    )
    expected = share < 1
    assert _editor_accepts(db_session, [SIBLING, child]) is expected
    assert _importer_accepts(db_session, [SIBLING, child]) is expected

"""Dense grid tiles read their shapes from neighbouring pages and cut each shape once

Revision ID: 0036_dense_tile_geometry
Revises: 0025_dense_grid_tiles
Create Date: 2026-12-06 00:00:00

What a dense grid tile cost (the 100k-micro-grid city, a z13 tile of about 5,300 grids, the
backend's CPU): half of it was reading the rows and cutting each shape twice, not the encoding.

- ``grid_tile`` rows lie in the order of their band and shape (PostGIS sorts shapes along a
  space-filling curve), so the grids of one tile share pages: a z13 tile's 5,300 rows lay on
  about 4,300 pages of 8 kB, one a row (the import wrote them by level, band after band, and
  every household count refresh moved them again); now on about 600. The upgrade writes the
  table again in that order; the grid triggers (revision 0015) insert the rows of each
  statement in that order too, so a bulk import stays in order (one statement a level) and an
  edit adds its few rows. Pages are filled to half (``fillfactor``), so that a refresh of code,
  name or household count, which rewrites each row of a page, finds room on the row's own page
  (a heap-only update) instead of moving it away from its neighbours.
- ``gridgov_tile_grids`` cuts each shape in a subquery that PostgreSQL does not flatten: the
  flattened one computed the shape once for its ``IS NOT NULL`` filter and again for the row
  (``ST_Affine`` or ``ST_AsMVTGeom`` twice a grid). The tiles hold the same features.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0036_dense_tile_geometry"
down_revision: str | Sequence[str] | None = "0025_dense_grid_tiles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DENSE = 1000  # as revision 0025: above this many grids a tile carries ids only
# Zoom bands of the grid layer (revision 0015): (band, first zoom, deepest level shown).
BANDS = ((1, 0, 2), (2, 11, 3), (3, 13, 4), (4, 15, 5))
# The zoom whose tile units a band's stored tile-unit shapes (``px``) are in (revision 0015).
BAND_TOLERANCE_ZOOM = {1: 10, 2: 11, 3: 13, 4: 15}
WORLD_M = 40075016.685578488
# The row order of grid_tile: rows a tile reads together lie together.
ORDER = "ORDER BY band, geom"
# Pages of grid_tile filled to this share (%): room for a new version of every row of a page.
FILLFACTOR = 50
# The statement triggers of revision 0022 that empty the shared tile cache (not needed while
# the upgrade writes the same rows again in another order).
CACHE_TRIGGERS = ("trg_tile_cache_grids_insert", "trg_tile_cache_grids_delete")

SCOPE = (
    "(scope IS NULL OR s.grid_id IN (SELECT unnest(scope)) "
    "OR s.grid_id IN (SELECT unnest(outline)))"
)


def _revision(filename: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location("gridgov_rev_" + path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _to_units(geom: str, zoom: int) -> str:
    """SQL turning a Web Mercator geometry into the tile units of ``zoom`` over the whole world
    (4096 a tile, y down), as revision 0015."""
    k = (1 << zoom) * 4096
    return f"ST_Affine({geom}, {k / WORLD_M!r}, 0, 0, {-k / WORLD_M!r}, {k / 2.0!r}, {k / 2.0!r})"


def _grid_rows(source: str) -> str:
    """Insert the grid_tile rows of the current grids among ``source`` (rows of grid), as
    revision 0015 did, in the table's order."""
    parts = []
    for band, _first, deepest in BANDS:
        zoom = BAND_TOLERANCE_ZOOM[band]
        tol = WORLD_M / (1 << zoom) / 4096.0
        snapped = f"ST_SnapToGrid({_to_units('m.geom', zoom)}, 1)"
        parts.append(
            f"""SELECT m.id AS grid_id, {band} AS band, m.level, m.code, m.name,
                m.household_count, m.geom, m.label,
                CASE WHEN ST_Dimension(u.px) = 2 AND NOT ST_IsEmpty(u.px) AND ST_IsValid(u.px)
                     THEN ST_ForcePolygonCCW(u.px) END AS px
            FROM (SELECT s.id, s.level, s.code, s.name, s.household_count,
                         ST_Simplify(ST_Transform(s.geom, 3857), {tol!r}, true) AS geom,
                         ST_Transform(ST_PointOnSurface(s.geom), 3857) AS label
                  FROM ({source}) s WHERE s.valid_to IS NULL AND s.level <= {deepest}) m
            CROSS JOIN LATERAL (SELECT {snapped} AS px) u"""
        )
    return (
        "INSERT INTO grid_tile (grid_id, band, level, code, name, household_count, geom, label, px) "
        "SELECT * FROM (" + " UNION ALL ".join(parts) + f") r {ORDER}"
    )


_CHANGED = (
    "n.level IS DISTINCT FROM o.level OR n.valid_to IS DISTINCT FROM o.valid_to "
    "OR NOT (n.geom = o.geom)"
)

GRID_TRIGGER = f"""
CREATE OR REPLACE FUNCTION gridgov_grid_tiles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_grid_rows("SELECT * FROM new_rows")};
  ELSIF TG_OP = 'DELETE' THEN
    DELETE FROM grid_tile t USING old_rows o WHERE t.grid_id = o.id;
  ELSE
    -- Only rows whose shape, level or validity changed (a household count refresh touches
    -- every grid and changes none of them).
    DELETE FROM grid_tile t USING old_rows o JOIN new_rows n ON n.id = o.id
    WHERE t.grid_id = o.id AND ({_CHANGED});
    {_grid_rows(f"SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE {_CHANGED}")};
    -- What the tile shows of a grid that kept its shape: code, name, household count.
    UPDATE grid_tile t SET code = n.code, name = n.name, household_count = n.household_count
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE t.grid_id = n.id AND n.valid_to IS NULL
      AND (n.code IS DISTINCT FROM o.code OR n.name IS DISTINCT FROM o.name
           OR n.household_count IS DISTINCT FROM o.household_count)
      AND NOT ({_CHANGED});
  END IF;
  RETURN NULL;
END $$
"""


def _grid_band(band: int) -> str:
    """The grid tile body of one band (a literal band, so its partial index is used), as
    revision 0025's but with each shape cut once: ``OFFSET 0`` keeps the subquery whole, so
    the outer filter reads the shape the subquery computed."""
    first = BAND_TOLERANCE_ZOOM[band]
    where = f"s.band = {band} AND s.geom && env3857 AND {SCOPE}"
    geom = """CASE WHEN fast AND s.px IS NOT NULL AND s.geom @ inner_env
                     THEN ST_Affine(s.px, k, 0, 0, k, -4096.0 * x, -4096.0 * y)
                     ELSE ST_AsMVTGeom(s.geom, env3857, 4096, 64, true) END"""
    outline = "(scope IS NOT NULL AND s.grid_id = ANY(outline))"
    return f"""
    fast := z BETWEEN {first} AND {first + 1};
    k := 2.0 ^ (z - {first});
    SELECT count(*) > {DENSE} INTO dense FROM (
      SELECT 1 FROM grid_tile s WHERE {where} LIMIT {DENSE + 1}) d;
    IF dense THEN
      SELECT ST_AsMVT(q, 'grids', 4096, 'geom', 'id') INTO shapes FROM (
        SELECT s.grid_id AS id, s.level, {outline} AS outline, {geom} AS geom
        FROM grid_tile s WHERE {where} OFFSET 0) q
      WHERE q.geom IS NOT NULL;
    ELSE
      SELECT ST_AsMVT(q, 'grids', 4096, 'geom', 'id') INTO shapes FROM (
        SELECT s.grid_id AS id, s.code, s.name, s.level, s.household_count,
               {outline} AS outline, {geom} AS geom
        FROM grid_tile s WHERE {where} OFFSET 0) q
      WHERE q.geom IS NOT NULL;
      SELECT ST_AsMVT(q, 'grid_labels', 4096, 'geom', 'id') INTO labels FROM (
        SELECT s.grid_id AS id, s.name, s.level,
               ST_SnapToGrid(ST_Affine(s.label, unit, 0, 0, -unit, unit * half - 4096.0 * x,
                                       unit * half - 4096.0 * y), 1) AS geom
        FROM grid_tile s
        WHERE {where} AND s.label && env3857
          AND (scope IS NULL OR NOT (s.grid_id = ANY(outline)))) q;
    END IF;"""


def _band_branches() -> str:
    out = []
    for i, (band, _first, _deepest) in enumerate(BANDS):
        keyword = "IF" if i == 0 else "ELSIF"
        nxt = BANDS[i + 1][1] if i + 1 < len(BANDS) else None
        cond = f"z < {nxt}" if nxt is not None else "TRUE"
        out.append(f"  {keyword} {cond} THEN {_grid_band(band)}")
    return "\n".join(out) + "\n  END IF;"


GRID_FUNCTION = f"""
CREATE FUNCTION gridgov_tile_grids(z integer, x integer, y integer, scope integer[], outline integer[])
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE
-- Index scans whatever the statistics say (a table just filled by an import has none yet), and
-- no parallel workers for one tile.
SET enable_seqscan = off
SET max_parallel_workers_per_gather = 0 AS $$
DECLARE
  env3857 geometry := ST_TileEnvelope(z, x, y);
  -- Shapes within this box need no clipping (the tile and its 64-unit buffer).
  inner_env geometry := ST_Expand(ST_TileEnvelope(z, x, y), {WORLD_M} / (2.0 ^ z) / 64.0);
  unit float8 := 4096.0 * (2.0 ^ z) / {WORLD_M};  -- tile units a metre
  half float8 := {WORLD_M} / 2.0;
  fast boolean;
  dense boolean;
  k float8;
  shapes bytea;
  labels bytea;
BEGIN
{_band_branches()}
  RETURN coalesce(shapes, ''::bytea) || coalesce(labels, ''::bytea);
END $$
"""


def _rewrite(order: str) -> None:
    """Write grid_tile again, its rows in ``order``; the shared cache's triggers are held off
    (the rows are the same), the cached grid tiles dropped (cut by another function)."""
    op.execute(f"CREATE TEMPORARY TABLE grid_tile_rows AS SELECT * FROM grid_tile {order}")
    for name in CACHE_TRIGGERS:
        op.execute(f"ALTER TABLE grid_tile DISABLE TRIGGER {name}")
    op.execute("TRUNCATE grid_tile")
    op.execute(f"INSERT INTO grid_tile SELECT * FROM grid_tile_rows {order}")
    for name in CACHE_TRIGGERS:
        op.execute(f"ALTER TABLE grid_tile ENABLE TRIGGER {name}")
    op.execute("DROP TABLE grid_tile_rows")
    op.execute("ANALYZE grid_tile")
    op.execute("DELETE FROM tile_cache WHERE layer = 'grids'")


def upgrade() -> None:
    op.execute(f"ALTER TABLE grid_tile SET (fillfactor = {FILLFACTOR})")
    op.execute(GRID_TRIGGER)
    op.execute("DROP FUNCTION gridgov_tile_grids")
    op.execute(GRID_FUNCTION)
    _rewrite(ORDER)


def downgrade() -> None:
    op.execute("ALTER TABLE grid_tile RESET (fillfactor)")
    op.execute(
        _revision("0015_tile_speed.py").GRID_TRIGGER.replace(
            "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
        )
    )
    op.execute("DROP FUNCTION IF EXISTS gridgov_tile_grids")
    op.execute(_revision("0025_dense_grid_tiles.py").GRID_FUNCTION)
    op.execute("DELETE FROM tile_cache WHERE layer = 'grids'")

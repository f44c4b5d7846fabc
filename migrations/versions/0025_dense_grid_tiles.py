"""Dense grid tiles carry ids only; the shared tile cache gets a size bound

Revision ID: 0025_dense_grid_tiles
Revises: 0022_tile_cache
Create Date: 2026-12-05 04:00:00

- ``gridgov_tile_grids``: a tile that holds more than ``DENSE`` of the caller's grids (at the
  first zooms of a band a city's tile holds thousands of micro-grids) carries each grid's id,
  level and outline flag only, and no ``grid_labels`` layer: the text attributes were most of
  the encoding, and the page fetches a grid's name when the pointer rests on it (the pick
  endpoint) and the names on the map from the labels endpoint, as it always did. The shapes are
  read by one index scan per layer instead of a materialised set (which copied every shape
  once more), and the function plans no parallel workers (on a loaded machine, starting them
  cost more than the scan of one tile).
- ``tile_cache`` gets ``size`` (bytes of the body) and ``used_at`` (the last time a request
  read it, kept to a few minutes) with an index on ``used_at``, so the app keeps the cache under
  a size limit by deleting the tiles used longest ago.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0025_dense_grid_tiles"
down_revision: str | Sequence[str] | None = "0022_tile_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Above this many grids a tile carries ids only (a tile at a band's second zoom holds about a
# quarter of its first zoom's grids; the 100k-micro-grid city: 3,900 and 5,300 at zooms 11 and
# 13, 1,360 at 12 and 14, 375 at 15).
DENSE = 1000
# Zoom bands of the grid layer (revision 0015): (band, first zoom, deepest level shown).
BANDS = ((1, 0, 2), (2, 11, 3), (3, 13, 4), (4, 15, 5))
# The zoom whose tile units a band's stored tile-unit shapes (``px``) are in (revision 0015).
BAND_TOLERANCE_ZOOM = {1: 10, 2: 11, 3: 13, 4: 15}
WORLD_M = 40075016.685578488

SCOPE = (
    "(scope IS NULL OR s.grid_id IN (SELECT unnest(scope)) "
    "OR s.grid_id IN (SELECT unnest(outline)))"
)


def _grid_band(band: int) -> str:
    """The grid tile body of one band (a literal band, so its partial index is used)."""
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
        FROM grid_tile s WHERE {where}) q
      WHERE q.geom IS NOT NULL;
    ELSE
      SELECT ST_AsMVT(q, 'grids', 4096, 'geom', 'id') INTO shapes FROM (
        SELECT s.grid_id AS id, s.code, s.name, s.level, s.household_count,
               {outline} AS outline, {geom} AS geom
        FROM grid_tile s WHERE {where}) q
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


def _previous_grid_function() -> str:
    """Revision 0015's grid tile function (what a downgrade puts back)."""
    path = Path(__file__).with_name("0015_tile_speed.py")
    spec = importlib.util.spec_from_file_location("gridgov_rev_0015_tile_speed", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.GRID_FUNCTION)


def upgrade() -> None:
    op.execute("DROP FUNCTION gridgov_tile_grids")
    op.execute(GRID_FUNCTION)
    op.execute("ALTER TABLE tile_cache ADD COLUMN size integer")
    op.execute("UPDATE tile_cache SET size = octet_length(body)")
    op.execute("ALTER TABLE tile_cache ALTER COLUMN size SET NOT NULL")
    op.execute("ALTER TABLE tile_cache ADD COLUMN used_at timestamptz NOT NULL DEFAULT now()")
    op.execute("CREATE INDEX ix_tile_cache_used_at ON tile_cache (used_at)")
    # Cached tiles were cut with the previous function.
    op.execute("DELETE FROM tile_cache WHERE layer = 'grids'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_tile_cache_used_at")
    op.execute("ALTER TABLE tile_cache DROP COLUMN IF EXISTS used_at")
    op.execute("ALTER TABLE tile_cache DROP COLUMN IF EXISTS size")
    op.execute("DROP FUNCTION IF EXISTS gridgov_tile_grids")
    op.execute(_previous_grid_function())
    op.execute("DELETE FROM tile_cache WHERE layer = 'grids'")

"""A shared cache of encoded grid tiles, invalidated tile by tile by the grid triggers

Revision ID: 0022_tile_cache
Revises: 0015_tile_speed
Create Date: 2026-12-05 00:40:00

- ``tile_cache``: gzipped tiles per (layer, z, x, y, scope digest), filled lazily by the app on a
  tile's first request, so a later request from any app process is one primary-key lookup
  instead of an ``ST_AsMVT`` encoding of thousands of features.
- A statement trigger on ``grid_tile`` (which the grid triggers of revision 0015 keep current on
  every import, edit, split, merge, division and undo) deletes the cached grid tiles that the
  old and the new bounding box of each changed row touch, at every zoom 0–22; a statement that
  changes many rows (an import, a household count refresh) empties the layer's cache instead.
- A writer renders and stores a tile only while it holds a shared advisory lock that the
  trigger takes exclusively: a tile rendered from data that a concurrent change is replacing
  is never stored after that change's deletions (the writer does not wait: without the lock it
  serves the tile and stores nothing).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_tile_cache"
down_revision: str | Sequence[str] | None = "0015_tile_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORLD_M = 40075016.685578488
MAX_ZOOM = 22
# The advisory lock shared by tile writers and taken exclusively by the invalidation trigger
# (app/services/tiles.py names the same key).
LOCK_KEY = 7_342_001_022
# Above this many changed rows in one statement the whole layer's cache is dropped.
BULK_ROWS = 2000


def _invalidate(boxes: str) -> str:
    """Delete the cached grid tiles that the bounding boxes of ``boxes`` (rows with a Web
    Mercator ``geom``) touch at every zoom, widened by a tile's 64-unit buffer; or every cached
    grid tile when the statement changed many rows."""
    return f"""
    SELECT count(*) INTO changed FROM ({boxes}) c;
    IF changed > {BULK_ROWS} THEN
      DELETE FROM tile_cache WHERE layer = 'grids';
    ELSIF changed > 0 THEN
      DELETE FROM tile_cache c USING (
        SELECT r.z,
               greatest(floor((b.x0 + b.h) / r.s - 0.02), 0)::integer AS x0,
               least(floor((b.x1 + b.h) / r.s + 0.02), r.n - 1)::integer AS x1,
               greatest(floor((b.h - b.y1) / r.s - 0.02), 0)::integer AS y0,
               least(floor((b.h - b.y0) / r.s + 0.02), r.n - 1)::integer AS y1
        FROM (SELECT ST_XMin(g.geom) AS x0, ST_XMax(g.geom) AS x1, ST_YMin(g.geom) AS y0,
                     ST_YMax(g.geom) AS y1, {WORLD_M / 2.0!r}::float8 AS h
              FROM ({boxes}) g) b
        CROSS JOIN (SELECT z, {WORLD_M!r} / (2.0 ^ z) AS s, (1 << z)::float8 AS n
                    FROM generate_series(0, {MAX_ZOOM}) z) r
      ) t
      WHERE c.layer = 'grids' AND c.z = t.z AND c.x BETWEEN t.x0 AND t.x1
        AND c.y BETWEEN t.y0 AND t.y1;
    END IF;"""


INVALIDATE = f"""
CREATE FUNCTION gridgov_tile_cache_grids() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed bigint;
BEGIN
  PERFORM pg_advisory_xact_lock({LOCK_KEY});
  IF TG_OP = 'INSERT' THEN {_invalidate("SELECT geom FROM new_rows")}
  ELSIF TG_OP = 'DELETE' THEN {_invalidate("SELECT geom FROM old_rows")}
  ELSE {_invalidate("SELECT geom FROM old_rows UNION ALL SELECT geom FROM new_rows")}
  END IF;
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tile_cache (
            layer varchar(16) NOT NULL,
            z smallint NOT NULL,
            x integer NOT NULL,
            y integer NOT NULL,
            scope varchar(32) NOT NULL,
            body bytea NOT NULL,
            made_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (layer, z, x, y, scope)
        )
        """
    )
    op.execute(INVALIDATE)
    for event, refs in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER trg_tile_cache_grids_{event.lower()} AFTER {event} ON grid_tile "
            f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tile_cache_grids()"
        )


def downgrade() -> None:
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS trg_tile_cache_grids_{event} ON grid_tile")
    op.execute("DROP FUNCTION IF EXISTS gridgov_tile_cache_grids")
    op.execute("DROP TABLE IF EXISTS tile_cache")

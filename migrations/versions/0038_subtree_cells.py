"""Household density per grid and everything below it, so a scoped density tile reads a few rows

Revision ID: 0038_subtree_cells
Revises: 0037_household_order
Create Date: 2026-12-06 09:00:00

A density tile for a caller who sees part of the city (a street centre, a grid chief, a worker)
summed the cells of each of the caller's grids (``household_cell``, revision 0015): one index
probe per grid, at every zoom. A street of the 100k-micro-grid city has 6,826 grids, so each of
its tiles made 6,826 probes, 20–40 ms whatever the zoom, and more for a larger scope.

- ``household_subtree_cell``: at zooms 10–12, the households and people per cell of every grid
  *above* a household's grid (its ancestors on ``grid.path``, revision 0027), with the sums of
  their Web Mercator coordinates as in ``household_cell``. A caller's scope is the subtrees of
  the grids it is assigned (its roots), so a tile at zoom 12 or below reads, per root, the
  root's own cells and its subtree's: a few probes, not one per grid. The statement triggers
  of ``household_cell`` keep it exact in the same statement, from the same per-grid delta at
  zoom 12 (an import's COPY is one statement: one pass over its rows for both tables); a row
  trigger on ``grid`` moves a grid's cells from its old ancestors to its new ones when the grid
  moves in the tree (its subtree moves row by row, each firing it).
- ``ix_household_cell_tile``: the cells of every grid at zooms 13 and 14 by tile, so a scoped
  tile at zooms 13–15 reads the cells that lie in the tile and keeps those of the caller's grids
  (a hash of the scope), instead of probing each grid.
- ``gridgov_tile_households`` takes the roots as a sixth argument (``NULL``: the old probe per
  grid of the scope).
"""

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0038_subtree_cells"
down_revision: str | Sequence[str] | None = "0037_household_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0027_grid_path"  # grid.path

SUBTREE_ZOOMS = (10, 11, 12)
TILE_ZOOMS = (13, 14)


@functools.cache
def _rev0015():  # type: ignore[no-untyped-def]
    """Revision 0015's module: the household trigger and tile function this one extends."""
    path = Path(__file__).with_name("0015_tile_speed.py")
    spec = importlib.util.spec_from_file_location("gridgov_rev_0015_tile_speed", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CELL_BITS = _rev0015().CELL_BITS  # a cell is 1/64 of a tile a side
# Adding a delta to a cell that is there already (the target aliased ``c``).
ADD_TO_CELL = """ON CONFLICT (grid_id, z, cx, cy) DO UPDATE SET
          households = c.households + EXCLUDED.households,
          people = c.people + EXCLUDED.people,
          sx = c.sx + EXCLUDED.sx, sy = c.sy + EXCLUDED.sy"""


def _subtree_ctes() -> str:
    """CTEs to add to revision 0015's delta statement, after its ``d12`` (the delta per leaf
    grid and zoom-12 cell): ``u12``–``u10``, the same per grid above, and ``subtree``, their
    upsert into ``household_subtree_cell`` (a data-modifying CTE runs whether or not the
    statement reads it)."""
    top = SUBTREE_ZOOMS[-1]
    ctes = [
        f"""u{top} AS (
            SELECT a.id AS grid_id, d.cx, d.cy, sum(d.n)::integer AS n,
                   sum(d.ppl)::integer AS ppl, sum(d.sx) AS sx, sum(d.sy) AS sy
            FROM d{top} d JOIN grid g ON g.id = d.grid_id
            CROSS JOIN LATERAL unnest(g.path[1:cardinality(g.path) - 1]) AS a(id)
            GROUP BY 1, 2, 3)"""
    ]
    for z in reversed(SUBTREE_ZOOMS[:-1]):
        ctes.append(
            f"""u{z} AS (
            SELECT grid_id, cx >> 1 AS cx, cy >> 1 AS cy, sum(n)::integer AS n,
                   sum(ppl)::integer AS ppl, sum(sx) AS sx, sum(sy) AS sy
            FROM u{z + 1} GROUP BY 1, 2, 3)"""
        )
    union = " UNION ALL ".join(
        f"SELECT grid_id, {z} AS z, cx, cy, n, ppl, sx, sy FROM u{z}" for z in SUBTREE_ZOOMS
    )
    ctes.append(
        f"""subtree AS (
        INSERT INTO household_subtree_cell AS c (grid_id, z, cx, cy, households, people, sx, sy)
        SELECT grid_id, z, cx, cy, n, ppl, sx, sy FROM ({union}) u
        WHERE n <> 0 OR ppl <> 0 OR sx <> 0 OR sy <> 0
        ORDER BY grid_id, z, cx, cy
        {ADD_TO_CELL}
        RETURNING 1)"""
    )
    return ",\n".join(ctes)


def _delta(source: str) -> str:
    """Revision 0015's statement adding ``source`` (rows grid_id, geom, people, sign) to
    ``household_cell``, which now adds it to ``household_subtree_cell`` too, in the same pass."""
    base = _rev0015()._cell_delta(source)
    marker = "\n        INSERT INTO household_cell AS c"
    head, tail = base.split(marker)
    return head + ",\n" + _subtree_ctes() + marker + tail


def _empty(source: str) -> str:
    """Remove the subtree cells that ``source`` (rows grid_id, geom) may have emptied."""
    fx, fy = _rev0015()._mercator("s.geom")
    return f"""
        DELETE FROM household_subtree_cell c
        USING (
          SELECT DISTINCT a.id AS grid_id, z.z,
                 floor(p.fx * (2.0 ^ (z.z + {CELL_BITS})))::integer AS cx,
                 floor(p.fy * (2.0 ^ (z.z + {CELL_BITS})))::integer AS cy
          FROM (SELECT s.grid_id, {fx} AS fx, {fy} AS fy FROM ({source}) s) p
          JOIN grid g ON g.id = p.grid_id
          CROSS JOIN LATERAL unnest(g.path[1:cardinality(g.path) - 1]) AS a(id)
          CROSS JOIN unnest(ARRAY{list(SUBTREE_ZOOMS)}) AS z(z)
        ) k
        WHERE c.grid_id = k.grid_id AND c.z = k.z AND c.cx = k.cx AND c.cy = k.cy
          AND c.households <= 0"""


def _household_trigger() -> str:
    """Revision 0015's trigger function on ``household``, keeping both tables."""
    m = _rev0015()
    old = "SELECT grid_id, geom, people, -1 AS sign FROM old_rows"
    both = (
        "SELECT n.grid_id, n.geom, n.people, 1 AS sign FROM new_rows n "
        "UNION ALL SELECT o.grid_id, o.geom, o.people, -1 FROM old_rows o"
    )
    gone = "SELECT grid_id, geom FROM old_rows"
    return f"""
CREATE OR REPLACE FUNCTION gridgov_household_cells() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_delta("SELECT grid_id, geom, people, 1 AS sign FROM new_rows")};
  ELSIF TG_OP = 'DELETE' THEN
    {_delta(old)};
    {m._empty_cells(gone)};
    {_empty(gone)};
  ELSE
    {_delta(both)};
    {m._empty_cells(gone)};
    {_empty(gone)};
  END IF;
  RETURN NULL;
END $$
"""


# A grid that moves in the tree (its path changes: a new parent, or an ancestor's) takes its own
# households' cells (household_cell at zooms 10–12) from the grids it left to those it joined.
GRID_TRIGGER = f"""
CREATE FUNCTION gridgov_grid_subtree_cells() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  left_ integer[];
  joined integer[];
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM household_subtree_cell WHERE grid_id = OLD.id;
    RETURN NULL;
  END IF;
  left_ := ARRAY(SELECT unnest(OLD.path[1:cardinality(OLD.path) - 1])
                 EXCEPT SELECT unnest(NEW.path[1:cardinality(NEW.path) - 1]));
  joined := ARRAY(SELECT unnest(NEW.path[1:cardinality(NEW.path) - 1])
                  EXCEPT SELECT unnest(OLD.path[1:cardinality(OLD.path) - 1]));
  IF cardinality(left_) = 0 AND cardinality(joined) = 0 THEN
    RETURN NULL;
  END IF;
  INSERT INTO household_subtree_cell AS c (grid_id, z, cx, cy, households, people, sx, sy)
  SELECT a.id, h.z, h.cx, h.cy, sum(h.households * a.sign)::integer,
         sum(h.people * a.sign)::integer, sum(h.sx * a.sign), sum(h.sy * a.sign)
  FROM household_cell h
  CROSS JOIN (SELECT unnest(joined) AS id, 1 AS sign
              UNION ALL SELECT unnest(left_), -1) a
  WHERE h.grid_id = NEW.id AND h.z BETWEEN {SUBTREE_ZOOMS[0]} AND {SUBTREE_ZOOMS[-1]}
  GROUP BY 1, 2, 3, 4
  ORDER BY 1, 2, 3, 4
  {ADD_TO_CELL};
  DELETE FROM household_subtree_cell s USING household_cell h
  WHERE h.grid_id = NEW.id AND h.z BETWEEN {SUBTREE_ZOOMS[0]} AND {SUBTREE_ZOOMS[-1]}
    AND s.grid_id = ANY(left_) AND s.z = h.z AND s.cx = h.cx AND s.cy = h.cy
    AND s.households <= 0;
  RETURN NULL;
END $$
"""


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _household_function() -> str:
    """Revision 0015's tile function with the caller's roots as a sixth argument, each statement
    planned for its arguments, and two branches for a caller with roots before the probe per
    grid (which stays for a call without them)."""
    point = (
        "ST_MakePoint(round((sum(c.sx) / sum(c.households) * scale - x) * 4096), "
        "round((sum(c.sy) / sum(c.households) * scale - y) * 4096))"
    )
    branches = f"""  ELSIF roots IS NOT NULL AND zs <= {SUBTREE_ZOOMS[-1]} THEN
    -- The caller's roots (the grids it is assigned; one under another counts once): each
    -- root's own cells and those of everything below it.
    SELECT ST_AsMVT(t, 'households', 4096, 'geom') INTO mvt FROM (
      SELECT sum(c.households)::integer AS households, sum(c.people)::integer AS people,
             {point} AS geom
      FROM (SELECT g.id FROM grid g
            WHERE g.id IN (SELECT unnest(roots))
              AND NOT (g.path[1:cardinality(g.path) - 1] && roots)) r
      CROSS JOIN LATERAL (
        SELECT c.cx, c.cy, c.households, c.people, c.sx, c.sy FROM household_cell c
        WHERE c.grid_id = r.id AND c.z = zs
          AND c.cx BETWEEN lo_x AND hi_x AND c.cy BETWEEN lo_y AND hi_y
        UNION ALL
        SELECT c.cx, c.cy, c.households, c.people, c.sx, c.sy FROM household_subtree_cell c
        WHERE c.grid_id = r.id AND c.z = zs
          AND c.cx BETWEEN lo_x AND hi_x AND c.cy BETWEEN lo_y AND hi_y) c
      GROUP BY c.cx >> shift, c.cy >> shift
      HAVING sum(c.households) > 0
    ) t;
  ELSIF roots IS NOT NULL THEN
    -- Zooms 13–15: the cells in the tile, those of the caller's grids. The scope is planned as
    -- a constant, which the executor hashes; inside CASE the planner neither estimates the
    -- test element by element nor turns it into a probe of the primary key per grid.
    SELECT ST_AsMVT(t, 'households', 4096, 'geom') INTO mvt FROM (
      SELECT sum(c.households)::integer AS households, sum(c.people)::integer AS people,
             {point} AS geom
      FROM household_cell c
      WHERE c.grid_id <> 0 AND c.z = zs AND c.z BETWEEN {TILE_ZOOMS[0]} AND {TILE_ZOOMS[-1]}
        AND (c.cx >> {CELL_BITS}) BETWEEN lo_x >> {CELL_BITS} AND hi_x >> {CELL_BITS}
        AND (c.cy >> {CELL_BITS}) BETWEEN lo_y >> {CELL_BITS} AND hi_y >> {CELL_BITS}
        AND c.cx BETWEEN lo_x AND hi_x AND c.cy BETWEEN lo_y AND hi_y
        AND CASE WHEN c.grid_id = ANY(scope) THEN true ELSE false END
      GROUP BY c.cx >> shift, c.cy >> shift
      HAVING sum(c.households) > 0
    ) t;
"""
    sql = _rev0015().HOUSEHOLD_FUNCTION
    sql = _replace_once(
        sql,
        "scope integer[], member integer)",
        "scope integer[],\n                                        member integer, roots integer[] DEFAULT NULL)",
    )
    sql = _replace_once(
        sql,
        "-- Index scans whatever the statistics say (a table just filled by an import has none yet).\n"
        "SET enable_seqscan = off AS $$",
        "-- Index scans whatever the statistics say (a table just filled by an import has none yet);\n"
        "-- each statement planned for its arguments, so that a scope is a constant the plan hashes.\n"
        "SET enable_seqscan = off SET plan_cache_mode = force_custom_plan AS $$",
    )
    return _replace_once(
        sql,
        "  ELSE\n    -- The caller's grids: the cells of each",
        branches + "  ELSE\n    -- The caller's grids: the cells of each",
    )


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE household_subtree_cell (
            grid_id integer NOT NULL,
            z smallint NOT NULL,
            cx integer NOT NULL,
            cy integer NOT NULL,
            households integer NOT NULL,
            people integer NOT NULL,
            sx float8 NOT NULL,
            sy float8 NOT NULL,
            PRIMARY KEY (grid_id, z, cx, cy)
        )
        """
    )
    op.execute(
        f"CREATE INDEX ix_household_cell_tile ON household_cell "
        f"(z, (cx >> {CELL_BITS}), (cy >> {CELL_BITS})) "
        f"WHERE grid_id <> 0 AND z BETWEEN {TILE_ZOOMS[0]} AND {TILE_ZOOMS[-1]}"
    )
    # What is there already: every grid's cells, added to each grid above it.
    op.execute(
        f"""
        INSERT INTO household_subtree_cell (grid_id, z, cx, cy, households, people, sx, sy)
        SELECT a.id, c.z, c.cx, c.cy, sum(c.households)::integer, sum(c.people)::integer,
               sum(c.sx), sum(c.sy)
        FROM household_cell c JOIN grid g ON g.id = c.grid_id
        CROSS JOIN LATERAL unnest(g.path[1:cardinality(g.path) - 1]) AS a(id)
        WHERE c.grid_id <> 0 AND c.z BETWEEN {SUBTREE_ZOOMS[0]} AND {SUBTREE_ZOOMS[-1]}
        GROUP BY 1, 2, 3, 4
        HAVING sum(c.households) > 0
        ORDER BY 1, 2, 3, 4
        """
    )
    op.execute(_household_trigger())
    op.execute(GRID_TRIGGER)
    op.execute(
        "CREATE TRIGGER trg_grid_subtree_cells_move AFTER UPDATE ON grid FOR EACH ROW "
        "WHEN (OLD.path IS DISTINCT FROM NEW.path) EXECUTE FUNCTION gridgov_grid_subtree_cells()"
    )
    op.execute(
        "CREATE TRIGGER trg_grid_subtree_cells_delete AFTER DELETE ON grid FOR EACH ROW "
        "EXECUTE FUNCTION gridgov_grid_subtree_cells()"
    )
    op.execute(
        "DROP FUNCTION gridgov_tile_households(integer, integer, integer, integer[], integer)"
    )
    op.execute(_household_function())
    op.execute("ANALYZE household_subtree_cell")


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS "
        "gridgov_tile_households(integer, integer, integer, integer[], integer, integer[])"
    )
    op.execute(_rev0015().HOUSEHOLD_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS trg_grid_subtree_cells_move ON grid")
    op.execute("DROP TRIGGER IF EXISTS trg_grid_subtree_cells_delete ON grid")
    op.execute("DROP FUNCTION IF EXISTS gridgov_grid_subtree_cells")
    op.execute(
        _rev0015().HOUSEHOLD_TRIGGER.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    )
    op.execute("DROP INDEX IF EXISTS ix_household_cell_tile")
    op.execute("DROP TABLE IF EXISTS household_subtree_cell")

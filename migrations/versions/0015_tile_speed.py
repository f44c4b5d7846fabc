"""Fast tiles at city scale: pre-aggregated household density, pre-simplified grids, basemap by zoom

Revision ID: 0015_tile_speed
Revises: 0010_map_tiles
Create Date: 2026-12-04 21:30:00

- ``household_cell``: households and people per cell and leaf grid at zooms 10–14 (a cell is
  1/64 of a tile a side, i.e. a tile of zoom z + 6), with the sums of the households' Web
  Mercator coordinates for the cell's centre; ``grid_id = 0`` rows hold the totals of every
  grid. Statement triggers with transition tables keep it exact on every insert (a COPY of a
  whole import is one statement), update and delete of households. A density tile (zooms up to
  15; zoom 15 reads zoom 14's cells, 32 a tile a side) is an index scan over at most 64 × 64
  cells (the totals, for a caller who sees every grid) or over the cells of the caller's grids
  (a probe per grid), never a pass over the households.
- ``grid_tile``: every current grid per zoom band (the levels a band shows), transformed to Web
  Mercator, simplified to one tile unit of the band's first zoom, with its label point and
  what the tile shows of it (code, name, household count). Statement triggers on ``grid`` keep
  it current on every import, edit, split, merge, division and undo (shape, level or validity
  changed: the rows are cut again; code, name or count changed: updated). A grid tile is one
  scan of one band's partial index.
- ``basemap_feature``: partial spatial indexes per ``min_zoom`` bucket, so the zoom filter is
  applied by the index (a z10 tile no longer reads every building to drop it).
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0015_tile_speed"
down_revision: str | Sequence[str] | None = "0010_map_tiles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CELL_BITS = 6  # 64 × 64 cells a tile
CELL_ZOOMS = (10, 11, 12, 13, 14)  # zooms with pre-aggregated density (below 10: zoom 10's cells)
# Zoom bands of the grid layer: (band, first zoom, deepest level shown).
BANDS = ((1, 0, 2), (2, 11, 3), (3, 13, 4), (4, 15, 5))
# The simplification tolerance of a band: one tile unit (1/4096 of a tile) at this zoom, an
# eighth of a pixel of a 512-pixel tile there and a quarter at the band's next zoom.
BAND_TOLERANCE_ZOOM = {1: 10, 2: 11, 3: 13, 4: 15}
WORLD_M = 40075016.685578488
# Basemap buckets of min_zoom: (name, SQL predicate, first zoom that shows the bucket).
BASEMAP_BUCKETS = (
    ("z10", "min_zoom <= 10", 0),
    ("z12", "min_zoom BETWEEN 11 AND 12", 11),
    ("z14", "min_zoom BETWEEN 13 AND 14", 13),
    ("z15", "min_zoom >= 15", 15),
)


def _mercator(geom: str) -> tuple[str, str]:
    """SQL for a point's Web Mercator coordinates as fractions of the world (0–1, y down)."""
    fx = f"least(greatest((ST_X({geom}) + 180.0) / 360.0, 0.0), 0.999999999999)"
    fy = (
        f"least(greatest((1.0 - asinh(tan(radians(ST_Y({geom})))) / pi()) / 2.0, 0.0), "
        "0.999999999999)"
    )
    return fx, fy


def _cell_delta(source: str) -> str:
    """One statement adding ``source`` (rows grid_id, geom, people, sign) to household_cell:
    the deltas are grouped at the finest zoom, then folded cell by cell to the coarser ones."""
    fx, fy = _mercator("s.geom")
    top = CELL_ZOOMS[-1]
    ctes = [
        f"src AS ({source})",
        f"""d{top} AS (
            SELECT grid_id, floor(fx * {2 ** (top + CELL_BITS)}.0)::integer AS cx,
                   floor(fy * {2 ** (top + CELL_BITS)}.0)::integer AS cy,
                   sum(sign)::integer AS n, sum(people * sign)::integer AS ppl,
                   sum(fx * sign) AS sx, sum(fy * sign) AS sy
            FROM (SELECT s.grid_id, s.people, s.sign, {fx} AS fx, {fy} AS fy FROM src s) p
            GROUP BY 1, 2, 3)""",
    ]
    for z in reversed(CELL_ZOOMS[:-1]):
        ctes.append(
            f"""d{z} AS (
            SELECT grid_id, cx >> 1 AS cx, cy >> 1 AS cy, sum(n)::integer AS n,
                   sum(ppl)::integer AS ppl, sum(sx) AS sx, sum(sy) AS sy
            FROM d{z + 1} GROUP BY 1, 2, 3)"""
        )
    union = " UNION ALL ".join(f"SELECT {z} AS z, * FROM d{z}" for z in CELL_ZOOMS)
    ctes.append(f"per_grid AS ({union})")
    ctes.append(
        """everything AS (
            SELECT z, grid_id, cx, cy, n, ppl, sx, sy FROM per_grid
            UNION ALL
            SELECT z, 0, cx, cy, sum(n)::integer, sum(ppl)::integer, sum(sx), sum(sy)
            FROM per_grid GROUP BY z, cx, cy)"""
    )
    return (
        "WITH "
        + ",\n".join(ctes)
        + """
        INSERT INTO household_cell AS c (grid_id, z, cx, cy, households, people, sx, sy)
        SELECT grid_id, z, cx, cy, n, ppl, sx, sy FROM everything
        WHERE n <> 0 OR ppl <> 0 OR sx <> 0 OR sy <> 0
        ORDER BY grid_id, z, cx, cy
        ON CONFLICT (grid_id, z, cx, cy) DO UPDATE SET
          households = c.households + EXCLUDED.households,
          people = c.people + EXCLUDED.people,
          sx = c.sx + EXCLUDED.sx, sy = c.sy + EXCLUDED.sy"""
    )


def _empty_cells(source: str) -> str:
    """Remove the cells that ``source`` (rows grid_id, geom) emptied."""
    fx, fy = _mercator("s.geom")
    return f"""
        DELETE FROM household_cell c
        USING (
          SELECT DISTINCT g.gid AS grid_id, z.z,
                 floor(p.fx * (2.0 ^ (z.z + {CELL_BITS})))::integer AS cx,
                 floor(p.fy * (2.0 ^ (z.z + {CELL_BITS})))::integer AS cy
          FROM (SELECT s.grid_id, {fx} AS fx, {fy} AS fy FROM ({source}) s) p
          CROSS JOIN unnest(ARRAY{list(CELL_ZOOMS)}) AS z(z)
          CROSS JOIN LATERAL (VALUES (p.grid_id), (0)) AS g(gid)
        ) k
        WHERE c.grid_id = k.grid_id AND c.z = k.z AND c.cx = k.cx AND c.cy = k.cy
          AND c.households <= 0"""


HOUSEHOLD_TRIGGER = f"""
CREATE FUNCTION gridgov_household_cells() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_cell_delta("SELECT grid_id, geom, people, 1 AS sign FROM new_rows")};
  ELSIF TG_OP = 'DELETE' THEN
    {_cell_delta("SELECT grid_id, geom, people, -1 AS sign FROM old_rows")};
    {_empty_cells("SELECT grid_id, geom FROM old_rows")};
  ELSE
    {
    _cell_delta(
        "SELECT n.grid_id, n.geom, n.people, 1 AS sign FROM new_rows n "
        "UNION ALL SELECT o.grid_id, o.geom, o.people, -1 FROM old_rows o"
    )
};
    {_empty_cells("SELECT grid_id, geom FROM old_rows")};
  END IF;
  RETURN NULL;
END $$
"""


def _to_units(geom: str, zoom: int, flip: bool = True) -> str:
    """SQL turning a Web Mercator geometry into the tile units of ``zoom`` over the whole world
    (4096 a tile, y down): a tile's own units are these less 4096 × its x and y."""
    k = (1 << zoom) * 4096
    return f"ST_Affine({geom}, {k / WORLD_M!r}, 0, 0, {-k / WORLD_M!r}, {k / 2.0!r}, {k / 2.0!r})"


def _grid_rows(source: str) -> str:
    """Insert the grid_tile rows of the current grids among ``source`` (rows of grid): the
    simplified shape, the label point and, for the band's first zoom, the shape already in
    tile units, snapped and oriented as a tile holds it (kept only when it stays valid)."""
    parts = []
    for band, _first, deepest in BANDS:
        zoom = BAND_TOLERANCE_ZOOM[band]
        tol = WORLD_M / (1 << zoom) / 4096.0
        snapped = f"ST_SnapToGrid({_to_units('m.geom', zoom)}, 1)"
        parts.append(
            f"""SELECT m.id, {band}, m.level, m.code, m.name, m.household_count, m.geom, m.label,
                CASE WHEN ST_Dimension(u.px) = 2 AND NOT ST_IsEmpty(u.px) AND ST_IsValid(u.px)
                     THEN ST_ForcePolygonCCW(u.px) END
            FROM (SELECT s.id, s.level, s.code, s.name, s.household_count,
                         ST_Simplify(ST_Transform(s.geom, 3857), {tol!r}, true) AS geom,
                         ST_Transform(ST_PointOnSurface(s.geom), 3857) AS label
                  FROM ({source}) s WHERE s.valid_to IS NULL AND s.level <= {deepest}) m
            CROSS JOIN LATERAL (SELECT {snapped} AS px) u"""
        )
    return (
        "INSERT INTO grid_tile (grid_id, band, level, code, name, household_count, geom, label, px) "
        + " UNION ALL ".join(parts)
    )


GRID_TRIGGER = f"""
CREATE FUNCTION gridgov_grid_tiles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_grid_rows("SELECT * FROM new_rows")};
  ELSIF TG_OP = 'DELETE' THEN
    DELETE FROM grid_tile t USING old_rows o WHERE t.grid_id = o.id;
  ELSE
    -- Only rows whose shape, level or validity changed (a household count refresh touches
    -- every grid and changes none of them).
    DELETE FROM grid_tile t USING old_rows o JOIN new_rows n ON n.id = o.id
    WHERE t.grid_id = o.id
      AND (n.level IS DISTINCT FROM o.level OR n.valid_to IS DISTINCT FROM o.valid_to
           OR NOT (n.geom = o.geom));
    {
    _grid_rows(
        "SELECT n.* FROM new_rows n JOIN old_rows o ON o.id = n.id "
        "WHERE n.level IS DISTINCT FROM o.level OR n.valid_to IS DISTINCT FROM o.valid_to "
        "OR NOT (n.geom = o.geom)"
    )
};
    -- What the tile shows of a grid that kept its shape: code, name, household count.
    UPDATE grid_tile t SET code = n.code, name = n.name, household_count = n.household_count
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE t.grid_id = n.id AND n.valid_to IS NULL
      AND (n.code IS DISTINCT FROM o.code OR n.name IS DISTINCT FROM o.name
           OR n.household_count IS DISTINCT FROM o.household_count)
      AND NOT (n.level IS DISTINCT FROM o.level OR n.valid_to IS DISTINCT FROM o.valid_to
               OR NOT (n.geom = o.geom));
  END IF;
  RETURN NULL;
END $$
"""


def _grid_band(band: int) -> str:
    """The grid tile body of one band (a literal band, so its partial index is used): one index
    scan for the shapes and the label points. At the band's first zoom and the next, a shape
    that lies within the tile and its buffer is its stored tile-unit shape moved to the tile
    (scaled by 2 at the next zoom; no clipping, no validation needed); others are cut by
    ST_AsMVTGeom."""
    first = BAND_TOLERANCE_ZOOM[band]
    return f"""
    fast := z BETWEEN {first} AND {first + 1};
    k := 2.0 ^ (z - {first});
    WITH t AS MATERIALIZED (
      SELECT s.grid_id AS id, s.code, s.name, s.level, s.household_count, s.geom, s.label, s.px
      FROM grid_tile s
      WHERE s.band = {band} AND s.geom && env3857
        AND (scope IS NULL OR s.grid_id IN (SELECT unnest(scope))
             OR s.grid_id IN (SELECT unnest(outline)))
    )
    SELECT
      (SELECT ST_AsMVT(q, 'grids', 4096, 'geom', 'id') FROM (
         SELECT t.id, t.code, t.name, t.level, t.household_count,
                (scope IS NOT NULL AND t.id = ANY(outline)) AS outline,
                CASE WHEN fast AND t.px IS NOT NULL AND t.geom @ inner_env
                     THEN ST_Affine(t.px, k, 0, 0, k, -4096.0 * x, -4096.0 * y)
                     ELSE ST_AsMVTGeom(t.geom, env3857, 4096, 64, true) END AS geom
         FROM t) q WHERE q.geom IS NOT NULL),
      (SELECT ST_AsMVT(q, 'grid_labels', 4096, 'geom', 'id') FROM (
         SELECT t.id, t.name, t.level,
                ST_SnapToGrid(ST_Affine(t.label, unit, 0, 0, -unit, unit * half - 4096.0 * x,
                                        unit * half - 4096.0 * y), 1) AS geom
         FROM t WHERE t.label && env3857 AND (scope IS NULL OR NOT (t.id = ANY(outline)))) q)
    INTO shapes, labels;"""


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
-- Index scans whatever the statistics say (a table just filled by an import has none yet).
SET enable_seqscan = off AS $$
DECLARE
  env3857 geometry := ST_TileEnvelope(z, x, y);
  -- Shapes within this box need no clipping (the tile and its 64-unit buffer).
  inner_env geometry := ST_Expand(ST_TileEnvelope(z, x, y), {WORLD_M} / (2.0 ^ z) / 64.0);
  unit float8 := 4096.0 * (2.0 ^ z) / {WORLD_M};  -- tile units a metre
  half float8 := {WORLD_M} / 2.0;
  fast boolean;
  k float8;
  shapes bytea;
  labels bytea;
BEGIN
{_band_branches()}
  RETURN coalesce(shapes, ''::bytea) || coalesce(labels, ''::bytea);
END $$
"""

_FX, _FY = _mercator("h.geom")
HOUSEHOLD_FUNCTION = f"""
CREATE FUNCTION gridgov_tile_households(z integer, x integer, y integer, scope integer[], member integer)
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE
-- Index scans whatever the statistics say (a table just filled by an import has none yet).
SET enable_seqscan = off AS $$
DECLARE
  env3857 geometry := ST_TileEnvelope(z, x, y);
  env geometry := ST_Transform(env3857, 4326);
  -- The stored cells read: zoom z's own from {CELL_ZOOMS[0]} to {CELL_ZOOMS[-1]}; zoom {CELL_ZOOMS[0]}'s folded
  -- together below; zoom {CELL_ZOOMS[-1]}'s (1/32 of a tile a side) at zoom {CELL_ZOOMS[-1] + 1}.
  zs integer := least(greatest(z, {CELL_ZOOMS[0]}), {CELL_ZOOMS[-1]});
  bits integer := least(greatest(z, {CELL_ZOOMS[0]}), {CELL_ZOOMS[-1]}) + {CELL_BITS} - z;
  shift integer := greatest({CELL_ZOOMS[0]} - z, 0);
  lo_x integer := x << bits;
  lo_y integer := y << bits;
  hi_x integer := ((x + 1) << bits) - 1;
  hi_y integer := ((y + 1) << bits) - 1;
  scale float8 := 2.0 ^ z;
  mvt bytea;
BEGIN
  IF z >= 16 THEN
    -- Bare points (no name, no address, no tag), each in the one tile that holds it.
    SELECT ST_AsMVT(t, 'households', 4096, 'geom') INTO mvt FROM (
      SELECT 1 AS households, p.people,
             ST_MakePoint(round((p.fx * scale - x) * 4096), round((p.fy * scale - y) * 4096)) AS geom
      FROM (SELECT h.people, {_FX} AS fx, {_FY} AS fy
            FROM household h
            WHERE h.geom && ST_Expand(env, 1e-7)
              AND (scope IS NULL OR h.grid_id IN (SELECT unnest(scope)))
              AND (member IS NULL OR h.linked_member_id = member)) p
      WHERE floor(p.fx * scale)::integer = x AND floor(p.fy * scale)::integer = y
    ) t;
  ELSIF member IS NOT NULL THEN
    -- A party member's own households (a few): grouped on the fly into cells of the same size.
    SELECT ST_AsMVT(t, 'households', 4096, 'geom') INTO mvt FROM (
      SELECT count(*)::integer AS households, sum(p.people)::integer AS people,
             ST_MakePoint(round((avg(p.fx) * scale - x) * 4096), round((avg(p.fy) * scale - y) * 4096)) AS geom
      FROM (SELECT h.people, {_FX} AS fx, {_FY} AS fy
            FROM household h
            WHERE h.geom && ST_Expand(env, 1e-7)
              AND (scope IS NULL OR h.grid_id IN (SELECT unnest(scope)))
              AND h.linked_member_id = member) p
      WHERE floor(p.fx * scale)::integer = x AND floor(p.fy * scale)::integer = y
      GROUP BY floor(p.fx * scale * {1 << CELL_BITS}), floor(p.fy * scale * {1 << CELL_BITS})
    ) t;
  ELSIF scope IS NULL THEN
    -- Every grid: the totals (grid_id 0), one index range.
    SELECT ST_AsMVT(t, 'households', 4096, 'geom') INTO mvt FROM (
      SELECT sum(c.households)::integer AS households, sum(c.people)::integer AS people,
             ST_MakePoint(round((sum(c.sx) / sum(c.households) * scale - x) * 4096),
                          round((sum(c.sy) / sum(c.households) * scale - y) * 4096)) AS geom
      FROM household_cell c
      WHERE c.grid_id = 0 AND c.z = zs
        AND (c.cx >> {CELL_BITS}) BETWEEN lo_x >> {CELL_BITS} AND hi_x >> {CELL_BITS}
        AND (c.cy >> {CELL_BITS}) BETWEEN lo_y >> {CELL_BITS} AND hi_y >> {CELL_BITS}
        AND c.cx BETWEEN lo_x AND hi_x AND c.cy BETWEEN lo_y AND hi_y
      GROUP BY c.cx >> shift, c.cy >> shift
      HAVING sum(c.households) > 0
    ) t;
  ELSE
    -- The caller's grids: the cells of each (a primary-key probe per grid).
    SELECT ST_AsMVT(t, 'households', 4096, 'geom') INTO mvt FROM (
      SELECT sum(c.households)::integer AS households, sum(c.people)::integer AS people,
             ST_MakePoint(round((sum(c.sx) / sum(c.households) * scale - x) * 4096),
                          round((sum(c.sy) / sum(c.households) * scale - y) * 4096)) AS geom
      FROM (SELECT DISTINCT unnest(scope) AS id) s
      CROSS JOIN LATERAL (
        SELECT c.cx, c.cy, c.households, c.people, c.sx, c.sy FROM household_cell c
        WHERE c.grid_id = s.id AND c.z = zs
          AND c.cx BETWEEN lo_x AND hi_x AND c.cy BETWEEN lo_y AND hi_y
        OFFSET 0) c  -- a probe per grid, never a join over the whole table
      GROUP BY c.cx >> shift, c.cy >> shift
      HAVING sum(c.households) > 0
    ) t;
  END IF;
  RETURN coalesce(mvt, ''::bytea);
END $$
"""


def _basemap_branches() -> str:
    parts = []
    for name, pred, first in BASEMAP_BUCKETS:
        parts.append(
            f"""SELECT b.kind, b.class, b.name,
             ST_AsMVTGeom(ST_Transform(ST_Simplify(b.geom, px, true), 3857), env3857, 4096, 64, true) AS geom
      FROM basemap_feature b
      WHERE z >= {first} AND b.{pred} AND b.geom && env AND z >= b.min_zoom  -- {name}"""
        )
    return "\n      UNION ALL\n      ".join(parts)


BASEMAP_FUNCTION = f"""
CREATE FUNCTION gridgov_tile_basemap(z integer, x integer, y integer)
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE
-- Index scans whatever the statistics say (a table just filled by an import has none yet).
SET enable_seqscan = off AS $$
DECLARE
  env3857 geometry := ST_TileEnvelope(z, x, y);
  env geometry := ST_Transform(env3857, 4326);
  px float8 := (ST_XMax(env) - ST_XMin(env)) / 4096.0;
  mvt bytea;
BEGIN
  -- One partial index a min_zoom bucket; a bucket beyond the zoom is not read at all.
  SELECT ST_AsMVT(t, 'basemap', 4096, 'geom') INTO mvt FROM (
      {_basemap_branches()}
  ) t WHERE t.geom IS NOT NULL;
  RETURN coalesce(mvt, ''::bytea);
END $$
"""


def _previous_functions() -> list[str]:
    """The tile functions of revision 0010 (what a downgrade puts back)."""
    path = Path(__file__).with_name("0010_map_tiles.py")
    spec = importlib.util.spec_from_file_location("gridgov_rev_0010_map_tiles", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.FUNCTIONS)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE household_cell (
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
        f"CREATE INDEX ix_household_cell_all ON household_cell "
        f"(z, (cx >> {CELL_BITS}), (cy >> {CELL_BITS})) WHERE grid_id = 0"
    )
    op.execute(
        """
        CREATE TABLE grid_tile (
            grid_id integer NOT NULL,
            band smallint NOT NULL,
            level smallint NOT NULL,
            code varchar(40) NOT NULL,
            name varchar(120) NOT NULL,
            household_count integer NOT NULL,
            geom geometry(Geometry, 3857) NOT NULL,
            label geometry(Point, 3857) NOT NULL,
            px geometry,
            PRIMARY KEY (grid_id, band)
        )
        """
    )
    for band, _first, _deepest in BANDS:
        op.execute(
            f"CREATE INDEX ix_grid_tile_band{band} ON grid_tile USING gist (geom) WHERE band = {band}"
        )
    for name, pred, _first in BASEMAP_BUCKETS:
        op.execute(
            f"CREATE INDEX ix_basemap_feature_{name} ON basemap_feature USING gist (geom) WHERE {pred}"
        )
    op.execute(HOUSEHOLD_TRIGGER)
    op.execute(GRID_TRIGGER)
    for event, refs in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER trg_household_cells_{event.lower()} AFTER {event} ON household "
            f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION gridgov_household_cells()"
        )
        op.execute(
            f"CREATE TRIGGER trg_grid_tiles_{event.lower()} AFTER {event} ON grid "
            f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION gridgov_grid_tiles()"
        )
    # What is there already.
    op.execute(_cell_delta("SELECT grid_id, geom, people, 1 AS sign FROM household"))
    op.execute(_grid_rows("SELECT * FROM grid"))
    for name in ("grids", "households", "basemap"):
        op.execute(f"DROP FUNCTION gridgov_tile_{name}")
    for sql in (GRID_FUNCTION, HOUSEHOLD_FUNCTION, BASEMAP_FUNCTION):
        op.execute(sql)
    op.execute("ANALYZE household_cell")
    op.execute("ANALYZE grid_tile")


def downgrade() -> None:
    for name in ("grids", "households", "basemap"):
        op.execute(f"DROP FUNCTION IF EXISTS gridgov_tile_{name}")
    for sql in _previous_functions():
        if any(f"gridgov_tile_{name}(" in sql for name in ("grids", "households", "basemap")):
            op.execute(sql)
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS trg_household_cells_{event} ON household")
        op.execute(f"DROP TRIGGER IF EXISTS trg_grid_tiles_{event} ON grid")
    op.execute("DROP FUNCTION IF EXISTS gridgov_household_cells")
    op.execute("DROP FUNCTION IF EXISTS gridgov_grid_tiles")
    for name, _pred, _first in BASEMAP_BUCKETS:
        op.execute(f"DROP INDEX IF EXISTS ix_basemap_feature_{name}")
    op.execute("DROP TABLE IF EXISTS grid_tile")
    op.execute("DROP TABLE IF EXISTS household_cell")

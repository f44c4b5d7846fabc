"""Vector tiles of the e-map: layer data versions, a basemap table, plpgsql tile functions

Revision ID: 0010_map_tiles
Revises: 0009_override_category_codes
Create Date: 2026-12-04 18:30:00

Tiles are cut in PostGIS (ST_AsMVT / ST_AsMVTGeom). Each function takes the tile's z/x/y and
the caller's scope (grid ids; NULL for everything), filters by zoom first, then by the GiST
index with the tile's envelope transformed to the data's SRID (never the data to the tile's),
and returns one MVT. ``map_layer_version`` holds a counter per layer, raised by statement
triggers on every change, so a tile cached under (layer, z, x, y, scope, version) is never stale.
``basemap_feature`` holds the project's own roads, buildings and water for the default basemap.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_map_tiles"
down_revision: str | Sequence[str] | None = "0009_override_category_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LAYER_TABLES = {
    "grids": ["grid"],
    "households": ["household"],
    "points": ["service_point", "camera"],
    "cases": ["case"],
    "overrides": ["override_area"],
    "basemap": ["basemap_feature"],
}

# Envelope of a tile in the data's SRID, and a simplification tolerance of about a quarter of
# a tile pixel (4096 units a tile) in degrees.
ENVELOPE = """
  env3857 geometry := ST_TileEnvelope(z, x, y);
  env geometry := ST_Transform(env3857, 4326);
  px float8 := (ST_XMax(env) - ST_XMin(env)) / 4096.0;
"""

FUNCTIONS = [
    # Grids: the levels shown at a zoom (a zoom filter first), outline-only ancestors for a
    # scoped caller, and a label point per grid in a layer of its own.
    f"""
CREATE FUNCTION gridgov_tile_grids(z integer, x integer, y integer, scope integer[], outline integer[])
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  {ENVELOPE}
  max_level integer := CASE WHEN z < 11 THEN 2 WHEN z < 13 THEN 3 WHEN z < 15 THEN 4 ELSE 5 END;
  shapes bytea;
  labels bytea;
BEGIN
  SELECT ST_AsMVT(t, 'grids', 4096, 'geom', 'id') INTO shapes FROM (
    SELECT g.id, g.code, g.name, g.level, g.household_count,
           (scope IS NOT NULL AND NOT (g.id = ANY(scope))) AS outline,
           ST_AsMVTGeom(ST_Transform(ST_Simplify(g.geom, px, true), 3857), env3857, 4096, 64, true) AS geom
    FROM grid g
    WHERE g.valid_to IS NULL AND g.level <= max_level AND g.geom && env
      AND (scope IS NULL OR g.id = ANY(scope) OR g.id = ANY(outline))
  ) t WHERE t.geom IS NOT NULL;
  SELECT ST_AsMVT(t, 'grid_labels', 4096, 'geom', 'id') INTO labels FROM (
    SELECT g.id, g.name, g.level,
           ST_AsMVTGeom(ST_Transform(ST_PointOnSurface(g.geom), 3857), env3857, 4096, 0, true) AS geom
    FROM grid g
    WHERE g.valid_to IS NULL AND g.level <= max_level AND g.geom && env
      AND (scope IS NULL OR g.id = ANY(scope))
  ) t WHERE t.geom IS NOT NULL;
  RETURN coalesce(shapes, ''::bytea) || coalesce(labels, ''::bytea);
END $$;
""",
    # Households: counts per cell of 16 tile pixels below zoom 16, bare points from zoom 16 on.
    # Never a name, an address or a tag.
    f"""
CREATE FUNCTION gridgov_tile_households(z integer, x integer, y integer, scope integer[], member integer)
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  {ENVELOPE}
  cell float8;
  mvt bytea;
BEGIN
  IF z >= 16 THEN
    SELECT ST_AsMVT(t, 'households', 4096, 'geom') INTO mvt FROM (
      SELECT 1 AS households, h.people,
             ST_AsMVTGeom(ST_Transform(h.geom, 3857), env3857, 4096, 0, true) AS geom
      FROM household h
      WHERE h.geom && env AND (scope IS NULL OR h.grid_id = ANY(scope))
        AND (member IS NULL OR h.linked_member_id = member)
    ) t WHERE t.geom IS NOT NULL;
  ELSE
    cell := px * 4096.0 / 256.0;
    SELECT ST_AsMVT(t, 'households', 4096, 'geom') INTO mvt FROM (
      SELECT count(*)::integer AS households, sum(h.people)::integer AS people,
             ST_AsMVTGeom(ST_Transform(ST_Centroid(ST_Collect(h.geom)), 3857), env3857, 4096, 0, true) AS geom
      FROM household h
      WHERE h.geom && env AND (scope IS NULL OR h.grid_id = ANY(scope))
        AND (member IS NULL OR h.linked_member_id = member)
      GROUP BY ST_SnapToGrid(h.geom, cell)
    ) t WHERE t.geom IS NOT NULL;
  END IF;
  RETURN coalesce(mvt, ''::bytea);
END $$;
""",
    # Service points (from zoom 10) and cameras (from zoom 13).
    f"""
CREATE FUNCTION gridgov_tile_points(z integer, x integer, y integer, scope integer[])
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  {ENVELOPE}
  sp bytea;
  cam bytea;
BEGIN
  IF z >= 10 THEN
    SELECT ST_AsMVT(t, 'service_points', 4096, 'geom', 'id') INTO sp FROM (
      SELECT s.id, s.name, s.kind, s.radius_m, s.status,
             ST_AsMVTGeom(ST_Transform(s.geom, 3857), env3857, 4096, 0, true) AS geom
      FROM service_point s
      WHERE s.geom && env AND (scope IS NULL OR s.grid_id = ANY(scope))
    ) t WHERE t.geom IS NOT NULL;
  END IF;
  IF z >= 13 THEN
    SELECT ST_AsMVT(t, 'cameras', 4096, 'geom', 'id') INTO cam FROM (
      SELECT c.id, c.code, c.name, c.kind,
             ST_AsMVTGeom(ST_Transform(c.geom, 3857), env3857, 4096, 0, true) AS geom
      FROM camera c
      WHERE c.geom && env AND (scope IS NULL OR c.grid_id = ANY(scope))
    ) t WHERE t.geom IS NOT NULL;
  END IF;
  RETURN coalesce(sp, ''::bytea) || coalesce(cam, ''::bytea);
END $$;
""",
    # Open cases the caller may see: in its grids, assigned to it, or escalated to it.
    f"""
CREATE FUNCTION gridgov_tile_cases(z integer, x integer, y integer, everything boolean,
                                   grid_ids integer[], worker integer, department integer)
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  {ENVELOPE}
  mvt bytea;
BEGIN
  IF z < 11 THEN RETURN ''::bytea; END IF;
  SELECT ST_AsMVT(t, 'cases', 4096, 'geom', 'id') INTO mvt FROM (
    SELECT c.id, c.category, c.status, (c.deadline IS NOT NULL AND c.deadline < now()) AS overdue,
           ST_AsMVTGeom(ST_Transform(c.geom, 3857), env3857, 4096, 0, true) AS geom
    FROM "case" c
    WHERE c.status NOT IN ('closed', 'cancelled') AND c.geom && env
      AND (everything
           OR (grid_ids IS NOT NULL AND c.grid_id = ANY(grid_ids))
           OR (worker IS NOT NULL AND c.assignee_id = worker)
           OR (department IS NOT NULL AND c.department_id = department))
  ) t WHERE t.geom IS NOT NULL;
  RETURN coalesce(mvt, ''::bytea);
END $$;
""",
    # Override areas that touch the caller's grids.
    f"""
CREATE FUNCTION gridgov_tile_overrides(z integer, x integer, y integer, scope integer[])
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  {ENVELOPE}
  mvt bytea;
BEGIN
  IF z < 11 THEN RETURN ''::bytea; END IF;
  SELECT ST_AsMVT(t, 'override_areas', 4096, 'geom', 'id') INTO mvt FROM (
    SELECT o.id, o.name, o.category,
           ST_AsMVTGeom(ST_Transform(ST_Simplify(o.geom, px, true), 3857), env3857, 4096, 64, true) AS geom
    FROM override_area o
    WHERE o.geom && env
      AND (scope IS NULL OR EXISTS (
            SELECT 1 FROM grid g WHERE g.id = ANY(scope) AND g.valid_to IS NULL
              AND g.geom && o.geom AND ST_Intersects(g.geom, o.geom)))
  ) t WHERE t.geom IS NOT NULL;
  RETURN coalesce(mvt, ''::bytea);
END $$;
""",
    # The default basemap: roads, buildings, water (no personal data; everyone sees it).
    f"""
CREATE FUNCTION gridgov_tile_basemap(z integer, x integer, y integer)
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  {ENVELOPE}
  mvt bytea;
BEGIN
  SELECT ST_AsMVT(t, 'basemap', 4096, 'geom') INTO mvt FROM (
    SELECT b.kind, b.class, b.name,
           ST_AsMVTGeom(ST_Transform(ST_Simplify(b.geom, px, true), 3857), env3857, 4096, 64, true) AS geom
    FROM basemap_feature b
    WHERE b.geom && env AND z >= b.min_zoom
  ) t WHERE t.geom IS NOT NULL;
  RETURN coalesce(mvt, ''::bytea);
END $$;
""",
]


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE map_layer_version (
            layer varchar(20) PRIMARY KEY,
            version bigint NOT NULL DEFAULT 1,
            changed_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "INSERT INTO map_layer_version (layer) VALUES "
        + ", ".join(f"('{layer}')" for layer in LAYER_TABLES)
    )
    op.execute(
        """
        CREATE TABLE basemap_feature (
            id serial PRIMARY KEY,
            kind varchar(20) NOT NULL CHECK (kind IN ('road', 'building', 'water', 'green', 'rail')),
            class varchar(20),
            name varchar(120),
            min_zoom smallint NOT NULL DEFAULT 0,
            geom geometry(Geometry, 4326) NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_basemap_feature_geom ON basemap_feature USING gist (geom)")
    op.execute(
        """
        CREATE FUNCTION gridgov_bump_map_layer() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE map_layer_version SET version = version + 1, changed_at = now()
          WHERE layer = TG_ARGV[0];
          RETURN NULL;
        END $$
        """
    )
    for layer, tables in LAYER_TABLES.items():
        for table in tables:
            op.execute(
                f"CREATE TRIGGER trg_{table}_map_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON \"{table}\" FOR EACH STATEMENT EXECUTE FUNCTION gridgov_bump_map_layer('{layer}')"
            )
    for sql in FUNCTIONS:
        op.execute(sql)


def downgrade() -> None:
    for name in ("grids", "households", "points", "cases", "overrides", "basemap"):
        op.execute(f"DROP FUNCTION IF EXISTS gridgov_tile_{name}")
    for tables in LAYER_TABLES.values():
        for table in tables:
            op.execute(f'DROP TRIGGER IF EXISTS trg_{table}_map_version ON "{table}"')
    op.execute("DROP FUNCTION IF EXISTS gridgov_bump_map_layer")
    op.execute("DROP TABLE IF EXISTS basemap_feature")
    op.execute("DROP TABLE IF EXISTS map_layer_version")

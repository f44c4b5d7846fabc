"""Open cases on the e-map's tiles carry their code and category name

Revision ID: 0013_case_tiles
Revises: 0010_map_tiles
Create Date: 2026-12-04 21:40:00

The e-map draws open cases from the ``cases`` tile layer (not a list of markers): each feature
needs its code and its category's name for the hover tooltip. The case's status and whether it is
overdue stay as they were.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_case_tiles"
down_revision: str | Sequence[str] | None = "0010_map_tiles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEAD = """
CREATE OR REPLACE FUNCTION gridgov_tile_cases(z integer, x integer, y integer, everything boolean,
                                              grid_ids integer[], worker integer, department integer)
RETURNS bytea LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
  env3857 geometry := ST_TileEnvelope(z, x, y);
  env geometry := ST_Transform(env3857, 4326);
  mvt bytea;
BEGIN
  IF z < 11 THEN RETURN ''::bytea; END IF;
  SELECT ST_AsMVT(t, 'cases', 4096, 'geom', 'id') INTO mvt FROM (
    SELECT {columns},
           ST_AsMVTGeom(ST_Transform(c.geom, 3857), env3857, 4096, 0, true) AS geom
    FROM "case" c {join}
    WHERE c.status NOT IN ('closed', 'cancelled') AND c.geom && env
      AND (everything
           OR (grid_ids IS NOT NULL AND c.grid_id = ANY(grid_ids))
           OR (worker IS NOT NULL AND c.assignee_id = worker)
           OR (department IS NOT NULL AND c.department_id = department))
  ) t WHERE t.geom IS NOT NULL;
  RETURN coalesce(mvt, ''::bytea);
END $$;
"""

OLD = "c.id, c.category, c.status, (c.deadline IS NOT NULL AND c.deadline < now()) AS overdue"
NEW = (
    "c.id, c.code, c.category, k.name AS category_name, c.status,"
    " (c.deadline IS NOT NULL AND c.deadline < now()) AS overdue"
)


def upgrade() -> None:
    op.execute(HEAD.format(columns=NEW, join="LEFT JOIN case_category k ON k.code = c.category"))


def downgrade() -> None:
    op.execute(HEAD.format(columns=OLD, join=""))

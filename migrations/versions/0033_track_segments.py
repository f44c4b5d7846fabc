"""A patrol's track breaks where the phone was silent or jumped: MULTILINESTRING M

Revision ID: 0033_track_segments
Revises: 0030_import_jobs (and depends on 0028_patrols)
Create Date: 2026-12-05 07:00:00

The track becomes a MULTILINESTRING M, one part per stretch walked without a break. A break
comes between two positions kept in the track more than ``gap_s`` seconds apart, or with a
position dropped for an impossible speed between them (a jump): the line never joins them with
a straight stretch nobody walked, so the map draws no made-up road and the coverage counts
none. ``gridgov_patrol_line(patrol_id, gap_s)`` builds the line from the points (a stretch of
a single position has no line); the service calls it on stop and for an open patrol on read.
Tracks stored before are rebuilt with a gap of 300 s (the setting's default).

A patrol also keeps its ``reach``: its trace buffered by ``reach_m`` metres (the buffer setting
when the track was built), which the coverage takes while the setting is unchanged.
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0033_track_segments"
down_revision: str | Sequence[str] | None = "0030_import_jobs"
branch_labels: str | Sequence[str] | None = None
# The patrol table it changes comes from 0028_patrols, on another branch: a dependency, so that
# the order of the branches never puts this revision first (databases that have both keep both
# as heads).
depends_on: str | Sequence[str] | None = "0028_patrols"

LINE_FUNCTION = """
CREATE FUNCTION gridgov_patrol_line(pid integer, gap_s double precision)
RETURNS geometry LANGUAGE sql STABLE PARALLEL SAFE AS $$
  WITH pts AS (
    SELECT pp.t, pp.geom, lag(pp.t) OVER (ORDER BY pp.t) AS prev
      FROM patrol_point pp WHERE pp.patrol_id = pid),
  marked AS (
    SELECT pts.t, pts.geom,
           count(*) FILTER (WHERE pts.prev IS NULL OR extract(epoch FROM pts.t - pts.prev) > gap_s
                            OR EXISTS (SELECT 1 FROM patrol_drop d
                                        WHERE d.patrol_id = pid AND d.reason = 'speed'
                                          AND d.t > pts.prev AND d.t < pts.t))
             OVER (ORDER BY pts.t) AS part
      FROM pts),
  parts AS (
    SELECT part, ST_MakeLine(ST_MakePointM(ST_X(geom), ST_Y(geom), extract(epoch FROM t))
                             ORDER BY t) AS line
      FROM marked GROUP BY part HAVING count(*) > 1)
  SELECT ST_SetSRID(ST_Multi(ST_Collect(line ORDER BY part)), 4326) FROM parts
$$
"""


def upgrade() -> None:
    op.add_column(
        "patrol",
        sa.Column(
            "reach",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON", srid=4326, spatial_index=False
            ),
            nullable=True,
        ),
    )
    op.add_column("patrol", sa.Column("reach_m", sa.Float(), nullable=True))
    op.execute(LINE_FUNCTION)
    op.alter_column(
        "patrol",
        "track",
        type_=geoalchemy2.types.Geometry(
            geometry_type="MULTILINESTRINGM", srid=4326, dimension=3, spatial_index=False
        ),
        postgresql_using="ST_Multi(track)",
    )
    op.execute(
        """UPDATE patrol p
              SET track = l.line,
                  length_m = coalesce(ST_Length(ST_Force2D(l.line)::geography), 0)
             FROM (SELECT id, gridgov_patrol_line(id, 300) AS line
                     FROM patrol WHERE track IS NOT NULL) l
            WHERE p.id = l.id"""
    )


def downgrade() -> None:
    # One line through every vertex again (the breaks are lost).
    op.execute(
        """UPDATE patrol SET track = ST_SetSRID(ST_Multi(ST_MakeLine(ARRAY(
               SELECT (d).geom FROM ST_DumpPoints(track) d ORDER BY (d).path))), 4326)
           WHERE ST_NumGeometries(track) > 1"""
    )
    op.alter_column(
        "patrol",
        "track",
        type_=geoalchemy2.types.Geometry(
            geometry_type="LINESTRINGM", srid=4326, dimension=3, spatial_index=False
        ),
        postgresql_using="ST_GeometryN(track, 1)",
    )
    op.execute("DROP FUNCTION gridgov_patrol_line(integer, double precision)")
    op.drop_column("patrol", "reach_m")
    op.drop_column("patrol", "reach")

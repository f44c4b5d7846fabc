"""Add override areas: per-category owners of a place that take precedence over the grid's

Revision ID: 0004_override_area
Revises: 0001
Create Date: 2026-11-22 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = "0004_override_area"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_geospatial_table(
        "override_area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_override_area_geom_valid")),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_override_area_geom_not_empty")),
        sa.CheckConstraint(
            "ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180 AND ST_YMin(geom) >= -90 "
            "AND ST_YMax(geom) <= 90",
            name=op.f("ck_override_area_lonlat_range"),
        ),
        sa.CheckConstraint("area_m2 > 0", name=op.f("ck_override_area_area_positive")),
        sa.CheckConstraint(
            "(department_id IS NULL) <> (worker_id IS NULL)",
            name=op.f("ck_override_area_one_keeper"),
        ),
        sa.CheckConstraint(
            "length(trim(category)) > 0", name=op.f("ck_override_area_category_given")
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_override_area_department_id_department"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
            name=op.f("fk_override_area_worker_id_worker"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_override_area")),
    )
    op.create_geospatial_index(
        "ix_override_area_geom",
        "override_area",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_override_area_category", "override_area", ["category"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_override_area_category", table_name="override_area")
    op.drop_geospatial_index(
        "ix_override_area_geom",
        table_name="override_area",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("override_area")

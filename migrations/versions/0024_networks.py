"""Departments' own grids (多网合一): networks and their versioned grids, a case category that
routes by a network, and the notice-board choices of a grid

Revision ID: 0024_networks
Revises: 0021_points
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0024_networks"
down_revision: str | Sequence[str] | None = "0021_points"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "network",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=20), server_default="other", nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=True),
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
        sa.CheckConstraint(
            "kind IN ('police', 'urban', 'environment', 'market', 'emergency', 'health', 'other')",
            name=op.f("ck_network_kind_known"),
        ),
        sa.CheckConstraint("length(trim(name)) > 0", name=op.f("ck_network_name_given")),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
            name=op.f("fk_network_department_id_department"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_network_grid_id_grid"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network")),
    )
    op.create_index(
        "uq_network_department_id_name", "network", ["department_id", "name"], unique=True
    )
    op.create_table(
        "network_grid",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("network_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("person_name", sa.String(length=60), nullable=True),
        sa.Column("person_phone", sa.String(length=20), nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON", srid=4326, spatial_index=False
            ),
            nullable=False,
        ),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "valid_from",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_network_grid_geom_valid")),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_network_grid_geom_not_empty")),
        sa.CheckConstraint("area_m2 > 0", name=op.f("ck_network_grid_area_positive")),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from",
            name=op.f("ck_network_grid_validity_ordered"),
        ),
        sa.CheckConstraint("length(trim(code)) > 0", name=op.f("ck_network_grid_code_given")),
        sa.ForeignKeyConstraint(
            ["network_id"],
            ["network.id"],
            name=op.f("fk_network_grid_network_id_network"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
            name=op.f("fk_network_grid_worker_id_worker"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_grid")),
    )
    op.create_index(
        "uq_network_grid_code_current",
        "network_grid",
        ["network_id", "code"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_index("ix_network_grid_geom", "network_grid", ["geom"], postgresql_using="gist")
    op.create_index("ix_network_grid_network_id", "network_grid", ["network_id"])
    op.add_column("case_category", sa.Column("network_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_case_category_network_id_network"),
        "case_category",
        "network",
        ["network_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_table(
        "notice_setting",
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.Column("show_phones", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"],
            ["grid.id"],
            name=op.f("fk_notice_setting_grid_id_grid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("grid_id", name=op.f("pk_notice_setting")),
    )


def downgrade() -> None:
    op.drop_table("notice_setting")
    op.drop_constraint(
        op.f("fk_case_category_network_id_network"), "case_category", type_="foreignkey"
    )
    op.drop_column("case_category", "network_id")
    op.drop_index("ix_network_grid_network_id", table_name="network_grid")
    op.drop_index("ix_network_grid_geom", table_name="network_grid", postgresql_using="gist")
    op.drop_index(
        "uq_network_grid_code_current",
        table_name="network_grid",
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.drop_table("network_grid")
    op.drop_index("uq_network_department_id_name", table_name="network")
    op.drop_table("network")

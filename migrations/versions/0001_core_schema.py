"""Create the core schema: grids, households, workers, places, cases

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:11:13.039845
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Geometry validity, type and SRID are enforced here, by the database, not only by the app.
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "department",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("duties", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_department")),
        sa.UniqueConstraint("code", name=op.f("uq_department_code")),
    )
    op.create_geospatial_table(
        "grid",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), server_default="comprehensive", nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
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
        sa.Column("household_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "valid_from",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("code ~ '^[0-9A-Za-z_-]+$'", name=op.f("ck_grid_code_chars")),
        sa.CheckConstraint(
            "kind IN ('comprehensive', 'dedicated')", name=op.f("ck_grid_kind_known")
        ),
        sa.CheckConstraint("NOT ST_IsEmpty(geom)", name=op.f("ck_grid_geom_not_empty")),
        sa.CheckConstraint("ST_IsValid(geom)", name=op.f("ck_grid_geom_valid")),
        sa.CheckConstraint("area_m2 > 0", name=op.f("ck_grid_area_positive")),
        sa.CheckConstraint("household_count >= 0", name=op.f("ck_grid_households_non_negative")),
        sa.CheckConstraint("level BETWEEN 1 AND 5", name=op.f("ck_grid_level_range")),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name=op.f("ck_grid_validity_ordered")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["grid.id"], name=op.f("fk_grid_parent_id_grid"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid")),
    )
    op.create_geospatial_index(
        "ix_grid_geom", "grid", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index("ix_grid_level", "grid", ["level"], unique=False)
    op.create_index("ix_grid_parent_id", "grid", ["parent_id"], unique=False)
    op.create_index(
        "uq_grid_code_current",
        "grid",
        ["code"],
        unique=True,
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_geospatial_table(
        "camera",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=True),
        sa.Column("kind", sa.String(length=20), server_default="fixed", nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("analytics", sa.Boolean(), server_default="false", nullable=False),
        sa.CheckConstraint(
            "kind IN ('fixed', 'dome', 'panoramic', 'other')", name=op.f("ck_camera_kind_known")
        ),
        sa.CheckConstraint(
            "ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90",
            name=op.f("ck_camera_lonlat_range"),
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_camera_grid_id_grid"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera")),
        sa.UniqueConstraint("code", name=op.f("uq_camera_code")),
    )
    op.create_geospatial_index(
        "ix_camera_geom",
        "camera",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_camera_grid_id", "camera", ["grid_id"], unique=False)
    op.create_geospatial_table(
        "service_point",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("radius_m", sa.Float(), server_default="1000", nullable=False),
        sa.Column("status", sa.String(length=10), server_default="active", nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('centre', 'station', 'point', 'civilisation', 'convenience', 'other')",
            name=op.f("ck_service_point_kind_known"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'planned', 'closed')", name=op.f("ck_service_point_status_known")
        ),
        sa.CheckConstraint(
            "ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90",
            name=op.f("ck_service_point_lonlat_range"),
        ),
        sa.CheckConstraint(
            "radius_m > 0 AND radius_m <= 50000", name=op.f("ck_service_point_radius_range")
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"],
            ["grid.id"],
            name=op.f("fk_service_point_grid_id_grid"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_point")),
    )
    op.create_geospatial_index(
        "ix_service_point_geom",
        "service_point",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_table(
        "worker",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("on_duty", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["department_id"], ["department.id"], name=op.f("fk_worker_department_id_department")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker")),
        sa.UniqueConstraint("code", name=op.f("uq_worker_code")),
    )
    op.create_geospatial_table(
        "case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("reported_x", sa.Float(), nullable=False),
        sa.Column("reported_y", sa.Float(), nullable=False),
        sa.Column("reported_crs", sa.String(length=20), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("camera_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=12), server_default="reported", nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("satisfaction", sa.SmallInteger(), nullable=True),
        sa.Column("solved", sa.Boolean(), nullable=True),
        sa.Column("reporter_contact", sa.String(length=60), nullable=True),
        sa.Column("idempotency_key", sa.String(length=80), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "source IN ('resident', 'patrol', 'camera', 'hotline', 'superior')",
            name=op.f("ck_case_source_known"),
        ),
        sa.CheckConstraint(
            "status IN ('reported', 'dispatched', 'accepted', 'resolved', 'verified', 'closed', 'cancelled')",
            name=op.f("ck_case_status_known"),
        ),
        sa.CheckConstraint(
            "ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90",
            name=op.f("ck_case_lonlat_range"),
        ),
        sa.CheckConstraint("satisfaction BETWEEN 1 AND 5", name=op.f("ck_case_satisfaction_range")),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["worker.id"],
            name=op.f("fk_case_assignee_id_worker"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["camera.id"], name=op.f("fk_case_camera_id_camera"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["department_id"], ["department.id"], name=op.f("fk_case_department_id_department")
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_case_grid_id_grid"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case")),
        sa.UniqueConstraint("code", name=op.f("uq_case_code")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_case_idempotency_key")),
    )
    op.create_index("ix_case_assignee_id_status", "case", ["assignee_id", "status"], unique=False)
    op.create_geospatial_index(
        "ix_case_geom", "case", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index("ix_case_grid_id_status", "case", ["grid_id", "status"], unique=False)
    op.create_table(
        "grid_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.CheckConstraint(
            "role IN ('grid_chief', 'micro_chief', 'worker_full', 'worker_part', 'party_member')",
            name=op.f("ck_grid_assignment_role_known"),
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"],
            ["grid.id"],
            name=op.f("fk_grid_assignment_grid_id_grid"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
            name=op.f("fk_grid_assignment_worker_id_worker"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_assignment")),
        sa.UniqueConstraint(
            "worker_id", "grid_id", "role", name=op.f("uq_grid_assignment_worker_id_grid_id_role")
        ),
    )
    op.create_index("ix_grid_assignment_grid_id", "grid_assignment", ["grid_id"], unique=False)
    op.create_geospatial_table(
        "household",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("building", sa.String(length=80), nullable=True),
        sa.Column("unit", sa.String(length=20), nullable=True),
        sa.Column("room", sa.String(length=20), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("people", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.Column("linked_member_id", sa.Integer(), nullable=True),
        sa.Column("tags", sa.ARRAY(sa.String(length=30)), server_default="{}", nullable=False),
        sa.Column("head_name", sa.String(length=60), nullable=True),
        sa.Column("head_phone", sa.String(length=20), nullable=True),
        sa.CheckConstraint(
            "ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90",
            name=op.f("ck_household_lonlat_range"),
        ),
        sa.CheckConstraint("people BETWEEN 0 AND 200", name=op.f("ck_household_people_range")),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_household_grid_id_grid"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["linked_member_id"],
            ["worker.id"],
            name=op.f("fk_household_linked_member_id_worker"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household")),
    )
    op.create_geospatial_index(
        "ix_household_geom",
        "household",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index("ix_household_grid_id", "household", ["grid_id"], unique=False)
    op.create_index(
        "ix_household_linked_member_id", "household", ["linked_member_id"], unique=False
    )
    op.create_geospatial_table(
        "case_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=True),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case.id"], name=op.f("fk_case_event_case_id_case"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_event")),
    )
    op.create_index("ix_case_event_case_id_at", "case_event", ["case_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_case_event_case_id_at", table_name="case_event")
    op.drop_geospatial_table("case_event")
    op.drop_index("ix_household_linked_member_id", table_name="household")
    op.drop_index("ix_household_grid_id", table_name="household")
    op.drop_geospatial_index(
        "ix_household_geom", table_name="household", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("household")
    op.drop_index("ix_grid_assignment_grid_id", table_name="grid_assignment")
    op.drop_table("grid_assignment")
    op.drop_index("ix_case_grid_id_status", table_name="case")
    op.drop_geospatial_index(
        "ix_case_geom", table_name="case", postgresql_using="gist", column_name="geom"
    )
    op.drop_index("ix_case_assignee_id_status", table_name="case")
    op.drop_geospatial_table("case")
    op.drop_table("worker")
    op.drop_geospatial_index(
        "ix_service_point_geom",
        table_name="service_point",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("service_point")
    op.drop_index("ix_camera_grid_id", table_name="camera")
    op.drop_geospatial_index(
        "ix_camera_geom", table_name="camera", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("camera")
    op.drop_index(
        "uq_grid_code_current", table_name="grid", postgresql_where=sa.text("valid_to IS NULL")
    )
    op.drop_index("ix_grid_parent_id", table_name="grid")
    op.drop_index("ix_grid_level", table_name="grid")
    op.drop_geospatial_index(
        "ix_grid_geom", table_name="grid", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("grid")
    op.drop_table("department")

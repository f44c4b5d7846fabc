"""Visits to households, duty check-ins and the visit-plan settings

Revision ID: 0020_visits
Revises: 0013_case_tiles
Create Date: 2026-12-04 22:30:00

A grid worker's field work: a visit (走访/遍访/慰问) to a household with the phone's place, how far
it was from the household (flagged beyond the limit, never dropped), what was found and the case
reported from it; a check-in (打卡) at the start of duty, inside one's own grids or flagged; the
settings of the visit plan (which tags make a key group, the distance limit).
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020_visits"
down_revision: str | Sequence[str] | None = "0013_case_tiles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "visit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(geometry_type="POINT", srid=4326, spatial_index=False),
            nullable=True,
        ),
        sa.Column("reported_x", sa.Float(), nullable=True),
        sa.Column("reported_y", sa.Float(), nullable=True),
        sa.Column("reported_crs", sa.String(length=40), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("place_flag", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("problems", sa.Text(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=80), nullable=True),
        sa.CheckConstraint(
            "kind IN ('monthly', 'quarterly', 'yearly', 'adhoc')", name=op.f("ck_visit_kind_known")
        ),
        sa.CheckConstraint(
            "accuracy_m IS NULL OR accuracy_m >= 0", name=op.f("ck_visit_accuracy_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case.id"], name=op.f("fk_visit_case_id_case"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_visit_grid_id_grid"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_visit_household_id_household"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_visit_user_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["worker.id"], name=op.f("fk_visit_worker_id_worker"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_visit_idempotency_key")),
    )
    op.create_index("ix_visit_worker_id_visited_at", "visit", ["worker_id", "visited_at"])
    op.create_index("ix_visit_household_id_visited_at", "visit", ["household_id", "visited_at"])
    op.create_index("ix_visit_grid_id", "visit", ["grid_id"])
    op.create_index("ix_visit_case_id", "visit", ["case_id"])
    op.create_table(
        "checkin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(geometry_type="POINT", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("inside", sa.Boolean(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=80), nullable=True),
        sa.CheckConstraint(
            "accuracy_m IS NULL OR accuracy_m >= 0", name=op.f("ck_checkin_accuracy_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_checkin_grid_id_grid"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_checkin_user_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
            name=op.f("fk_checkin_worker_id_worker"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_checkin_idempotency_key")),
    )
    op.create_index("ix_checkin_worker_id_checked_at", "checkin", ["worker_id", "checked_at"])
    op.create_table(
        "visit_setting",
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_visit_setting")),
    )


def downgrade() -> None:
    op.drop_table("visit_setting")
    op.drop_index("ix_checkin_worker_id_checked_at", table_name="checkin")
    op.drop_table("checkin")
    op.drop_index("ix_visit_case_id", table_name="visit")
    op.drop_index("ix_visit_grid_id", table_name="visit")
    op.drop_index("ix_visit_household_id_visited_at", table_name="visit")
    op.drop_index("ix_visit_worker_id_visited_at", table_name="visit")
    op.drop_table("visit")

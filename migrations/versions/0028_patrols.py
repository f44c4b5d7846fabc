"""Patrols and their tracks: points, refused points, batches; check-in positions may be cleared

Revision ID: 0028_patrols
Revises: 0020_visits
Create Date: 2026-12-05 04:00:00

A worker's patrol (巡查) from start to stop: the positions a phone posts in batches (one row per
patrol and moment, so a retried batch adds nothing), those refused with their reason (an
impossible speed, a poor accuracy, a time out of range), the batches seen by their key, and the
track as a LINESTRING M (measure: seconds since the epoch) built from the points, with its
trace (its distinct segments, simplified) that the coverage buffers. A check-in's
position may be cleared by the retention run (kept: when, inside or not, the distance).
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0028_patrols"
down_revision: str | Sequence[str] | None = "0020_visits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patrol",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "track",
            geoalchemy2.types.Geometry(
                geometry_type="LINESTRINGM", srid=4326, dimension=3, spatial_index=False
            ),
            nullable=True,
        ),
        sa.Column(
            "trace",
            geoalchemy2.types.Geometry(
                geometry_type="MULTILINESTRING", srid=4326, spatial_index=False
            ),
            nullable=True,
        ),
        sa.Column("point_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dropped_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("length_m", sa.Float(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=80), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= started_at", name=op.f("ck_patrol_ends_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_patrol_user_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["worker.id"],
            name=op.f("fk_patrol_worker_id_worker"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_patrol_idempotency_key")),
    )
    op.create_index("ix_patrol_worker_id_started_at", "patrol", ["worker_id", "started_at"])
    op.create_index("ix_patrol_started_at", "patrol", ["started_at"])
    op.create_index("ix_patrol_track", "patrol", ["track"], postgresql_using="gist")
    op.create_table(
        "patrol_point",
        sa.Column("patrol_id", sa.Integer(), nullable=False),
        sa.Column("t", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(geometry_type="POINT", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patrol_id"],
            ["patrol.id"],
            name=op.f("fk_patrol_point_patrol_id_patrol"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patrol_id", "t", name=op.f("pk_patrol_point")),
    )
    op.create_table(
        "patrol_drop",
        sa.Column("patrol_id", sa.Integer(), nullable=False),
        sa.Column("t", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(geometry_type="POINT", srid=4326, spatial_index=False),
            nullable=True,
        ),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "reason IN ('speed', 'accuracy', 'time')", name=op.f("ck_patrol_drop_reason_known")
        ),
        sa.ForeignKeyConstraint(
            ["patrol_id"],
            ["patrol.id"],
            name=op.f("fk_patrol_drop_patrol_id_patrol"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patrol_id", "t", name=op.f("pk_patrol_drop")),
    )
    op.create_table(
        "patrol_batch",
        sa.Column("patrol_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("duplicate", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patrol_id"],
            ["patrol.id"],
            name=op.f("fk_patrol_batch_patrol_id_patrol"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patrol_id", "key", name=op.f("pk_patrol_batch")),
    )
    op.alter_column("checkin", "geom", nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM checkin WHERE geom IS NULL")
    op.alter_column("checkin", "geom", nullable=False)
    op.drop_table("patrol_batch")
    op.drop_table("patrol_drop")
    op.drop_table("patrol_point")
    op.drop_index("ix_patrol_track", table_name="patrol", postgresql_using="gist")
    op.drop_index("ix_patrol_started_at", table_name="patrol")
    op.drop_index("ix_patrol_worker_id_started_at", table_name="patrol")
    op.drop_table("patrol")

"""Add the case loop: categories, working-day calendar, settings, merges, camera events, photos

Revision ID: 0005_case_loop
Revises: 0001
Create Date: 2026-11-22 10:00:00

Seeds the categories from data/case_categories.csv, the calendar (Chinese public holidays and
make-up working days) from data/calendar/cn_workdays.csv, and the settings' defaults.
"""

import csv
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_case_loop"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DATA = Path(__file__).resolve().parents[2] / "data"
# The defaults of app.services.cases.SETTINGS_DEFAULTS at the time of this revision.
SETTINGS = {
    "camera_review_required": False,
    "camera_dedup_minutes": 30,
    "duplicate_radius_m": 50,
    "rating_timeout_hours": 72,
    "work_periods": [["08:30", "12:00"], ["13:30", "18:00"]],
    "timezone": "Asia/Shanghai",
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def upgrade() -> None:
    category = op.create_table(
        "case_category",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("time_limit_hours", sa.Float(), nullable=False),
        sa.Column("escalation_department_code", sa.String(length=40), nullable=True),
        sa.Column("verify_required", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "camera_event_types",
            postgresql.ARRAY(sa.String(length=40)),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.CheckConstraint("code ~ '^[a-z0-9_]+$'", name=op.f("ck_case_category_code_chars")),
        sa.CheckConstraint(
            "time_limit_hours > 0", name=op.f("ck_case_category_time_limit_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_category")),
        sa.UniqueConstraint("code", name=op.f("uq_case_category_code")),
    )
    calendar = op.create_table(
        "work_calendar",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("is_workday", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_work_calendar")),
    )
    settings = op.create_table(
        "case_setting",
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_case_setting")),
    )

    op.add_column("case", sa.Column("idempotency_hash", sa.String(length=64), nullable=True))
    op.add_column("case", sa.Column("reporter_name", sa.String(length=60), nullable=True))
    op.add_column("case", sa.Column("address", sa.String(length=200), nullable=True))
    op.add_column(
        "case", sa.Column("escalation_level", sa.SmallInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "case", sa.Column("routing", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column("case", sa.Column("merged_into_id", sa.Integer(), nullable=True))
    op.add_column("case", sa.Column("camera_event_type", sa.String(length=40), nullable=True))
    op.add_column(
        "case", sa.Column("camera_event_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "case", sa.Column("last_camera_event_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("case", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("case", sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("case", sa.Column("rating_note", sa.Text(), nullable=True))
    op.add_column(
        "case",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_case_escalation_level_range"), "case", "escalation_level BETWEEN 0 AND 2"
    )
    op.create_foreign_key(
        op.f("fk_case_merged_into_id_case"),
        "case",
        "case",
        ["merged_into_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_case_category_status", "case", ["category", "status"], unique=False)
    op.create_index("ix_case_created_at", "case", ["created_at"], unique=False)
    op.create_index(
        "ix_case_camera_open",
        "case",
        ["camera_id", "camera_event_type"],
        unique=False,
        postgresql_where=sa.text("status NOT IN ('closed', 'cancelled')"),
    )

    op.add_column("case_event", sa.Column("actor_role", sa.String(length=20), nullable=True))
    op.add_column("case_event", sa.Column("actor_worker_id", sa.Integer(), nullable=True))
    op.add_column(
        "case_event", sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.create_foreign_key(
        op.f("fk_case_event_actor_worker_id_worker"),
        "case_event",
        "worker",
        ["actor_worker_id"],
        ["id"],
        ondelete="SET NULL",
    )

    op.create_table(
        "case_merge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("into_case_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("case_id <> into_case_id", name=op.f("ck_case_merge_not_itself")),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case.id"], name=op.f("fk_case_merge_case_id_case"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["into_case_id"],
            ["case.id"],
            name=op.f("fk_case_merge_into_case_id_case"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_merge")),
        sa.UniqueConstraint("case_id", name=op.f("uq_case_merge_case_id")),
    )
    op.create_index("ix_case_merge_into_case_id", "case_merge", ["into_case_id"], unique=False)

    op.create_table(
        "case_photo",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("mime", sa.String(length=30), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case.id"], name=op.f("fk_case_photo_case_id_case"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["case_event.id"],
            name=op.f("fk_case_photo_event_id_case_event"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_photo")),
    )
    op.create_index("ix_case_photo_case_id", "case_photo", ["case_id"], unique=False)

    op.create_table(
        "camera_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("merged", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["camera.id"],
            name=op.f("fk_camera_event_camera_id_camera"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case.id"], name=op.f("fk_camera_event_case_id_case"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            ["case_photo.id"],
            name=op.f("fk_camera_event_photo_id_case_photo"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera_event")),
    )
    op.create_index(
        "ix_camera_event_camera_type_at",
        "camera_event",
        ["camera_id", "event_type", "occurred_at"],
        unique=False,
    )
    op.create_index("ix_camera_event_case_id", "camera_event", ["case_id"], unique=False)

    # Case codes number from one sequence; the code itself carries the day.
    op.execute("CREATE SEQUENCE case_code_seq")

    op.bulk_insert(
        category,
        [
            {
                "code": r["code"],
                "name": r["name"],
                "time_limit_hours": float(r["time_limit_hours"]),
                "escalation_department_code": r["escalation_department_code"] or None,
                "verify_required": r["verify_required"].strip().lower() == "true",
                "camera_event_types": [t for t in r["camera_event_types"].split(";") if t],
                "description": r["description"] or None,
            }
            for r in _rows(DATA / "case_categories.csv")
        ],
    )
    op.bulk_insert(
        calendar,
        [
            {
                "day": date.fromisoformat(r["date"]),
                "is_workday": r["is_workday"].strip().lower() == "true",
                "name": r["name"],
                "source": r["source"] or None,
            }
            for r in _rows(DATA / "calendar" / "cn_workdays.csv")
        ],
    )
    op.bulk_insert(settings, [{"key": k, "value": v} for k, v in SETTINGS.items()])
    # Cases name their category by code (existing rows, if any, become 'other').
    op.execute(
        "UPDATE \"case\" SET category = 'other' WHERE category NOT IN (SELECT code FROM case_category)"
    )
    op.create_foreign_key(
        op.f("fk_case_category_case_category"),
        "case",
        "case_category",
        ["category"],
        ["code"],
        onupdate="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_case_category_case_category"), "case", type_="foreignkey")
    op.execute("DROP SEQUENCE case_code_seq")
    op.drop_index("ix_camera_event_case_id", table_name="camera_event")
    op.drop_index("ix_camera_event_camera_type_at", table_name="camera_event")
    op.drop_table("camera_event")
    op.drop_index("ix_case_photo_case_id", table_name="case_photo")
    op.drop_table("case_photo")
    op.drop_index("ix_case_merge_into_case_id", table_name="case_merge")
    op.drop_table("case_merge")
    op.drop_constraint(
        op.f("fk_case_event_actor_worker_id_worker"), "case_event", type_="foreignkey"
    )
    for column in ("details", "actor_worker_id", "actor_role"):
        op.drop_column("case_event", column)
    op.drop_index("ix_case_camera_open", table_name="case")
    op.drop_index("ix_case_created_at", table_name="case")
    op.drop_index("ix_case_category_status", table_name="case")
    op.drop_constraint(op.f("fk_case_merged_into_id_case"), "case", type_="foreignkey")
    op.drop_constraint(op.f("ck_case_escalation_level_range"), "case", type_="check")
    for column in (
        "updated_at",
        "rating_note",
        "rated_at",
        "resolved_at",
        "last_camera_event_at",
        "camera_event_count",
        "camera_event_type",
        "merged_into_id",
        "routing",
        "escalation_level",
        "address",
        "reporter_name",
        "idempotency_hash",
    ):
        op.drop_column("case", column)
    op.drop_table("case_setting")
    op.drop_table("work_calendar")
    op.drop_table("case_category")

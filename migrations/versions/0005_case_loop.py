"""Add the case loop: categories, working-day calendar, settings, merges, camera events, photos

Revision ID: 0005_case_loop
Revises: 0001
Create Date: 2026-11-22 10:00:00

Seeds the categories, the calendar (Chinese public holidays and make-up working days, 2025 to
2027) and the settings' defaults, with the values written into this file: what the data files
held when the revision was made, so the migration writes the same rows whatever those files
say later (the running app reloads the calendar with ``gridgov calendar load``).
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_case_loop"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The defaults of app.services.cases.SETTINGS_DEFAULTS at the time of this revision.
SETTINGS = {
    "camera_review_required": False,
    "camera_dedup_minutes": 30,
    "duplicate_radius_m": 50,
    "rating_timeout_hours": 72,
    "work_periods": [["08:30", "12:00"], ["13:30", "18:00"]],
    "timezone": "Asia/Shanghai",
}

# The case categories as of this revision (frozen: later edits of data/case_categories.csv
# do not change what this migration wrote). Columns: code, name, time limit in hours,
# escalation department, verification required, camera event types, description.
CATEGORIES = [
    (
        "fire_hazard",
        "消防安全隐患",
        4.0,
        "PCS-AH",
        True,
        ["fire_lane_blocked", "smoke"],
        "堵塞消防通道、电动车楼道充电等",
    ),
    ("dispute", "矛盾纠纷", 16.0, "PCS-AH", True, [], "邻里、家庭、物业等矛盾纠纷"),
    (
        "road_occupation",
        "占道经营",
        8.0,
        "CG-AH",
        True,
        ["street_vending", "outside_shop_business"],
        "店外经营、流动摊贩占道",
    ),
    (
        "illegal_parking",
        "车辆乱停放",
        4.0,
        "CG-AH",
        False,
        ["non_motor_parking", "vehicle_parking"],
        "机动车、非机动车乱停乱放",
    ),
    (
        "garbage",
        "垃圾暴露堆放",
        8.0,
        "CG-AH",
        False,
        ["garbage_overflow"],
        "垃圾桶满溢、建筑垃圾乱堆",
    ),
    ("illegal_building", "违章搭建", 40.0, "CG-AH", True, [], "私搭乱建"),
    ("streetlight", "路灯损坏", 24.0, "WY-AH", True, [], "路灯不亮、灯杆损坏"),
    ("facility", "公共设施损坏", 40.0, "WY-AH", True, [], "井盖、护栏、健身器材等损坏"),
    ("property", "物业问题", 40.0, "WY-AH", True, [], "物业服务、设施维修纠纷"),
    ("noise", "噪声扰民", 16.0, "HB-AH", True, [], "施工、商业、生活噪声"),
    ("oil_smoke", "油烟污水", 24.0, "HB-AH", True, [], "餐饮油烟、污水直排"),
    ("food_safety", "食品安全", 24.0, "SJ-AH", True, [], "食品安全、无证经营"),
    ("other", "其他", 40.0, None, True, [], "其他需网格处理的事项"),
]
# The notices the calendar rows come from.
SOURCES = [
    "国办发明电〔2024〕12号 国务院办公厅关于2025年部分节假日安排的通知（2024-11-12）",
    "国务院办公厅关于2026年部分节假日安排的通知（2025-11-04）",
    "《全国年节及纪念日放假办法》（2024年修订）法定假日及周末补假；2027年调休上班日待国务院办公厅通知公布后补入",
]
# Public holidays and make-up working days as of this revision (frozen, like CATEGORIES):
# day, is a working day, name, index into SOURCES (None: no source).
CALENDAR = [
    ("2025-01-01", False, "元旦", 0),
    ("2025-01-26", True, "春节调休上班", 0),
    ("2025-01-28", False, "春节", 0),
    ("2025-01-29", False, "春节", 0),
    ("2025-01-30", False, "春节", 0),
    ("2025-01-31", False, "春节", 0),
    ("2025-02-01", False, "春节", 0),
    ("2025-02-02", False, "春节", 0),
    ("2025-02-03", False, "春节", 0),
    ("2025-02-04", False, "春节", 0),
    ("2025-02-08", True, "春节调休上班", 0),
    ("2025-04-04", False, "清明节", 0),
    ("2025-04-05", False, "清明节", 0),
    ("2025-04-06", False, "清明节", 0),
    ("2025-04-27", True, "劳动节调休上班", 0),
    ("2025-05-01", False, "劳动节", 0),
    ("2025-05-02", False, "劳动节", 0),
    ("2025-05-03", False, "劳动节", 0),
    ("2025-05-04", False, "劳动节", 0),
    ("2025-05-05", False, "劳动节", 0),
    ("2025-05-31", False, "端午节", 0),
    ("2025-06-01", False, "端午节", 0),
    ("2025-06-02", False, "端午节", 0),
    ("2025-09-28", True, "国庆节调休上班", 0),
    ("2025-10-01", False, "国庆节、中秋节", 0),
    ("2025-10-02", False, "国庆节、中秋节", 0),
    ("2025-10-03", False, "国庆节、中秋节", 0),
    ("2025-10-04", False, "国庆节、中秋节", 0),
    ("2025-10-05", False, "国庆节、中秋节", 0),
    ("2025-10-06", False, "国庆节、中秋节", 0),
    ("2025-10-07", False, "国庆节、中秋节", 0),
    ("2025-10-08", False, "国庆节、中秋节", 0),
    ("2025-10-11", True, "国庆节调休上班", 0),
    ("2026-01-01", False, "元旦", 1),
    ("2026-01-02", False, "元旦", 1),
    ("2026-01-03", False, "元旦", 1),
    ("2026-01-04", True, "元旦调休上班", 1),
    ("2026-02-14", True, "春节调休上班", 1),
    ("2026-02-15", False, "春节", 1),
    ("2026-02-16", False, "春节", 1),
    ("2026-02-17", False, "春节", 1),
    ("2026-02-18", False, "春节", 1),
    ("2026-02-19", False, "春节", 1),
    ("2026-02-20", False, "春节", 1),
    ("2026-02-21", False, "春节", 1),
    ("2026-02-22", False, "春节", 1),
    ("2026-02-23", False, "春节", 1),
    ("2026-02-28", True, "春节调休上班", 1),
    ("2026-04-04", False, "清明节", 1),
    ("2026-04-05", False, "清明节", 1),
    ("2026-04-06", False, "清明节", 1),
    ("2026-05-01", False, "劳动节", 1),
    ("2026-05-02", False, "劳动节", 1),
    ("2026-05-03", False, "劳动节", 1),
    ("2026-05-04", False, "劳动节", 1),
    ("2026-05-05", False, "劳动节", 1),
    ("2026-05-09", True, "劳动节调休上班", 1),
    ("2026-06-19", False, "端午节", 1),
    ("2026-06-20", False, "端午节", 1),
    ("2026-06-21", False, "端午节", 1),
    ("2026-09-20", True, "国庆节调休上班", 1),
    ("2026-09-25", False, "中秋节", 1),
    ("2026-09-26", False, "中秋节", 1),
    ("2026-09-27", False, "中秋节", 1),
    ("2026-10-01", False, "国庆节", 1),
    ("2026-10-02", False, "国庆节", 1),
    ("2026-10-03", False, "国庆节", 1),
    ("2026-10-04", False, "国庆节", 1),
    ("2026-10-05", False, "国庆节", 1),
    ("2026-10-06", False, "国庆节", 1),
    ("2026-10-07", False, "国庆节", 1),
    ("2026-10-10", True, "国庆节调休上班", 1),
    ("2027-01-01", False, "元旦", 2),
    ("2027-02-05", False, "春节", 2),
    ("2027-02-06", False, "春节", 2),
    ("2027-02-07", False, "春节", 2),
    ("2027-02-08", False, "春节", 2),
    ("2027-02-09", False, "春节", 2),
    ("2027-02-10", False, "春节", 2),
    ("2027-04-05", False, "清明节", 2),
    ("2027-05-01", False, "劳动节", 2),
    ("2027-05-02", False, "劳动节", 2),
    ("2027-05-03", False, "劳动节", 2),
    ("2027-05-04", False, "劳动节", 2),
    ("2027-06-09", False, "端午节", 2),
    ("2027-09-15", False, "中秋节", 2),
    ("2027-10-01", False, "国庆节", 2),
    ("2027-10-02", False, "国庆节", 2),
    ("2027-10-03", False, "国庆节", 2),
    ("2027-10-04", False, "国庆节", 2),
    ("2027-10-05", False, "国庆节", 2),
]


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
                "code": code,
                "name": name,
                "time_limit_hours": hours,
                "escalation_department_code": department,
                "verify_required": verify,
                "camera_event_types": types,
                "description": description,
            }
            for code, name, hours, department, verify, types, description in CATEGORIES
        ],
    )
    op.bulk_insert(
        calendar,
        [
            {
                "day": date.fromisoformat(day),
                "is_workday": workday,
                "name": name,
                "source": None if source is None else SOURCES[source],
            }
            for day, workday, name, source in CALENDAR
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

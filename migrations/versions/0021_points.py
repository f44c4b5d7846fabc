"""Points ledgers (积分): the rulebook, party members' entries with a two-step review, households'
entries and the exchange ledger of the 积分超市

Revision ID: 0021_points
Revises: 0020_visits
Create Date: 2026-12-04 23:00:00

A rule is versioned by rows: a change of its points is a new row with the same code, a higher
version and the date it applies from; an entry keeps the row (the version) it was made under.
Totals and balances are never stored: they are sums over the entries (and exchanges).
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "0021_points"
down_revision: str | Sequence[str] | None = "0020_visits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (code, name, kind, subject, points): a starting rulebook the village may change.
RULES = [
    ("DY-LZ-01", "带动联系户参与村级重点工作", "履职分", "member", 5),
    ("DY-LZ-02", "化解组内矛盾纠纷", "履职分", "member", 3),
    ("DY-JL-01", "完成急难险重任务", "奖励分", "member", 5),
    ("DY-JL-02", "参加志愿服务", "奖励分", "member", 2),
    ("DY-FM-01", "受到党纪处分", "负面分", "member", -10),
    ("DY-FM-02", "联系户矛盾纠纷未及时化解", "负面分", "member", -3),
    ("HH-JL-01", "参加志愿服务或义务劳动", "奖励分", "household", 3),
    ("HH-JL-02", "庭院环境卫生评为整洁户", "奖励分", "household", 2),
    ("HH-FM-01", "乱堆乱放经劝导不改", "负面分", "household", -2),
]


def upgrade() -> None:
    rule = op.create_table(
        "point_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=20), server_default="member", nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('履职分', '奖励分', '负面分')", name=op.f("ck_point_rule_kind_known")
        ),
        sa.CheckConstraint(
            "subject IN ('member', 'household')", name=op.f("ck_point_rule_subject_known")
        ),
        sa.CheckConstraint(
            "(kind = '负面分' AND points < 0) OR (kind <> '负面分' AND points > 0)",
            name=op.f("ck_point_rule_sign_of_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["app_user.id"],
            name=op.f("fk_point_rule_created_by_app_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_rule")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_point_rule_code_version")),
    )
    op.create_table(
        "point_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("visit_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="proposed", nullable=False),
        sa.Column("proposed_by", sa.Integer(), nullable=True),
        sa.Column(
            "proposed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("chief_by", sa.Integer(), nullable=True),
        sa.Column("chief_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("chief_decision", sa.String(length=10), nullable=True),
        sa.Column("chief_note", sa.Text(), nullable=True),
        sa.Column("centre_by", sa.Integer(), nullable=True),
        sa.Column("centre_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("centre_decision", sa.String(length=10), nullable=True),
        sa.Column("centre_note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('proposed', 'chief_approved', 'approved', 'rejected')",
            name=op.f("ck_point_entry_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["worker.id"],
            name=op.f("fk_point_entry_member_id_worker"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["point_rule.id"],
            name=op.f("fk_point_entry_rule_id_point_rule"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case.id"], name=op.f("fk_point_entry_case_id_case"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["visit.id"],
            name=op.f("fk_point_entry_visit_id_visit"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by"],
            ["app_user.id"],
            name=op.f("fk_point_entry_proposed_by_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["chief_by"],
            ["app_user.id"],
            name=op.f("fk_point_entry_chief_by_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["centre_by"],
            ["app_user.id"],
            name=op.f("fk_point_entry_centre_by_app_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_entry")),
    )
    op.create_index(
        "ix_point_entry_member_id_occurred_on", "point_entry", ["member_id", "occurred_on"]
    )
    op.create_table(
        "household_point_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_household_point_entry_household_id_household"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["point_rule.id"],
            name=op.f("fk_household_point_entry_rule_id_point_rule"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["app_user.id"],
            name=op.f("fk_household_point_entry_created_by_app_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_point_entry")),
    )
    op.create_index(
        "ix_household_point_entry_household_id_occurred_on",
        "household_point_entry",
        ["household_id", "occurred_on"],
    )
    op.create_table(
        "point_exchange",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("item", sa.String(length=120), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("points > 0", name=op.f("ck_point_exchange_points_positive")),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_point_exchange_household_id_household"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["app_user.id"],
            name=op.f("fk_point_exchange_created_by_app_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_exchange")),
    )
    op.create_index("ix_point_exchange_household_id", "point_exchange", ["household_id"])
    op.bulk_insert(
        rule,
        [
            {
                "code": c,
                "version": 1,
                "name": n,
                "kind": k,
                "subject": s,
                "points": p,
                "valid_from": date(2026, 1, 1),
            }
            for c, n, k, s, p in RULES
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_point_exchange_household_id", table_name="point_exchange")
    op.drop_table("point_exchange")
    op.drop_index(
        "ix_household_point_entry_household_id_occurred_on", table_name="household_point_entry"
    )
    op.drop_table("household_point_entry")
    op.drop_index("ix_point_entry_member_id_occurred_on", table_name="point_entry")
    op.drop_table("point_entry")
    op.drop_table("point_rule")

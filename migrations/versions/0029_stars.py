"""Points from the platform's own records, points settings, star ratings (评星定级) of micro-grids
with quarter close, and inspections of party-mass service points

Revision ID: 0029_stars
Revises: 0021_points
Create Date: 2026-12-05 04:00:00

An automatic entry names the record that made it (``source_kind`` + ``source_id``); a unique index
over (member, kind, record) makes re-running the sync harmless. A linked household's loss gives the
member a share of it, so such an entry carries its own ``points``. A closed quarter keeps its
ratings frozen in ``star_rating``; adjustments and inspections are rows of their own.
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0029_stars"
down_revision: str | Sequence[str] | None = "0021_points"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rules the automatic entries use (the village may change their points, as any rule).
RULES = [
    ("DY-ZD-01", "上报的事件已办结", "履职分", "member", 2),
    ("DY-FM-03", "联系户积分扣减连带", "负面分", "member", -1),
]


def _user_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["app_user.id"], name=op.f(f"fk_{table}_{column}_app_user"), ondelete="SET NULL"
    )


def _now() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column("point_entry", sa.Column("source_kind", sa.String(length=20), nullable=True))
    op.add_column("point_entry", sa.Column("source_id", sa.Integer(), nullable=True))
    op.add_column("point_entry", sa.Column("points", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_point_entry_source_named"),
        "point_entry",
        "(source_kind IS NULL) = (source_id IS NULL)",
    )
    op.create_check_constraint(
        op.f("ck_point_entry_points_not_zero"), "point_entry", "points IS NULL OR points <> 0"
    )
    op.create_index(
        "uq_point_entry_source",
        "point_entry",
        ["member_id", "source_kind", "source_id"],
        unique=True,
        postgresql_where=sa.text("source_kind IS NOT NULL"),
    )
    op.create_table(
        "point_setting",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        _user_fk("point_setting", "updated_by"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_point_setting")),
    )
    op.create_table(
        "star_adjustment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("delta", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _now(),
        sa.CheckConstraint("delta BETWEEN -2 AND 2", name=op.f("ck_star_adjustment_delta_range")),
        sa.CheckConstraint(
            "char_length(btrim(reason)) >= 2", name=op.f("ck_star_adjustment_reason_given")
        ),
        sa.ForeignKeyConstraint(
            ["grid_id"],
            ["grid.id"],
            name=op.f("fk_star_adjustment_grid_id_grid"),
            ondelete="CASCADE",
        ),
        _user_fk("star_adjustment", "created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_star_adjustment")),
    )
    op.create_index("ix_star_adjustment_grid_id_quarter", "star_adjustment", ["grid_id", "quarter"])
    op.create_table(
        "star_quarter",
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("closed_by", sa.Integer(), nullable=True),
        sa.Column(
            "closed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        _user_fk("star_quarter", "closed_by"),
        sa.PrimaryKeyConstraint("quarter", name=op.f("pk_star_quarter")),
    )
    op.create_table(
        "star_rating",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("scores", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("computed_stars", sa.SmallInteger(), nullable=False),
        sa.Column("adjustment", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("adjustment_reason", sa.Text(), nullable=True),
        sa.Column("stars", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("stars BETWEEN 0 AND 5", name=op.f("ck_star_rating_stars_range")),
        sa.ForeignKeyConstraint(
            ["grid_id"], ["grid.id"], name=op.f("fk_star_rating_grid_id_grid"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["quarter"],
            ["star_quarter.quarter"],
            name=op.f("fk_star_rating_quarter_star_quarter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_star_rating")),
        sa.UniqueConstraint("grid_id", "quarter", name=op.f("uq_star_rating_grid_id_quarter")),
    )
    op.create_table(
        "service_point_rating",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_point_id", sa.Integer(), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("hardware", sa.SmallInteger(), nullable=False),
        sa.Column("organisation", sa.SmallInteger(), nullable=False),
        sa.Column("norms", sa.SmallInteger(), nullable=False),
        sa.Column("effect", sa.SmallInteger(), nullable=False),
        sa.Column("stars", sa.SmallInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _now(),
        sa.CheckConstraint(
            "hardware BETWEEN 0 AND 25 AND organisation BETWEEN 0 AND 25 AND norms BETWEEN 0 AND 25"
            " AND effect BETWEEN 0 AND 25",
            name=op.f("ck_service_point_rating_scores_range"),
        ),
        sa.ForeignKeyConstraint(
            ["service_point_id"],
            ["service_point.id"],
            name=op.f("fk_service_point_rating_service_point_id_service_point"),
            ondelete="CASCADE",
        ),
        _user_fk("service_point_rating", "created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_point_rating")),
    )
    op.create_index(
        "ix_service_point_rating_service_point_id_quarter",
        "service_point_rating",
        ["service_point_id", "quarter"],
    )
    op.create_table(
        "service_point_rating_photo",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rating_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("mime", sa.String(length=30), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        _now(),
        sa.ForeignKeyConstraint(
            ["rating_id"],
            ["service_point_rating.id"],
            name=op.f("fk_service_point_rating_photo_rating_id_service_point_rating"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_point_rating_photo")),
    )
    op.create_index(
        "ix_service_point_rating_photo_rating_id", "service_point_rating_photo", ["rating_id"]
    )
    rule = sa.table(
        "point_rule",
        sa.column("code", sa.String),
        sa.column("version", sa.Integer),
        sa.column("name", sa.String),
        sa.column("kind", sa.String),
        sa.column("subject", sa.String),
        sa.column("points", sa.Integer),
        sa.column("valid_from", sa.Date),
    )
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
    op.execute(
        "DELETE FROM point_entry WHERE rule_id IN (SELECT id FROM point_rule"
        " WHERE code IN ('DY-ZD-01', 'DY-FM-03'))"
    )
    op.execute("DELETE FROM point_rule WHERE code IN ('DY-ZD-01', 'DY-FM-03')")
    op.drop_index(
        "ix_service_point_rating_photo_rating_id", table_name="service_point_rating_photo"
    )
    op.drop_table("service_point_rating_photo")
    op.drop_index(
        "ix_service_point_rating_service_point_id_quarter", table_name="service_point_rating"
    )
    op.drop_table("service_point_rating")
    op.drop_table("star_rating")
    op.drop_table("star_quarter")
    op.drop_index("ix_star_adjustment_grid_id_quarter", table_name="star_adjustment")
    op.drop_table("star_adjustment")
    op.drop_table("point_setting")
    op.drop_index("uq_point_entry_source", table_name="point_entry")
    op.drop_constraint(op.f("ck_point_entry_points_not_zero"), "point_entry", type_="check")
    op.drop_constraint(op.f("ck_point_entry_source_named"), "point_entry", type_="check")
    op.drop_column("point_entry", "points")
    op.drop_column("point_entry", "source_id")
    op.drop_column("point_entry", "source_kind")

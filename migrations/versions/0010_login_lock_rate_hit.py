"""Sign-in locks per account and address; hits of rate-limited actions

Revision ID: 0010_login_lock_rate_hit
Revises: 0009_override_category_codes
Create Date: 2026-12-04 18:40:00

A failed sign-in used to lock the account for everyone; it now holds back only the address it
came from (``login_lock``). ``rate_hit`` counts rate-limited actions (anonymous photo uploads)
per address. An index on login attempts by account and address serves the lock.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_login_lock_rate_hit"
down_revision: str | Sequence[str] | None = "0009_override_category_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_lock",
        sa.Column("username", sa.String(length=60), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username", "ip", name=op.f("pk_login_lock")),
    )
    op.create_table(
        "rate_hit",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("bucket", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_hit")),
    )
    op.create_index("ix_rate_hit_bucket_key_at", "rate_hit", ["bucket", "key", "at"])


def downgrade() -> None:
    op.drop_index("ix_rate_hit_bucket_key_at", table_name="rate_hit")
    op.drop_table("rate_hit")
    op.drop_table("login_lock")

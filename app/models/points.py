"""Points ledgers (积分): the versioned rulebook, party members' entries with their two-step
review, households' entries and the exchanges at the 积分超市. Totals are sums, never stored."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

POINT_KINDS = ("履职分", "奖励分", "负面分")
POINT_SUBJECTS = {"member": "党员", "household": "农户"}
ENTRY_STATUSES = {
    "proposed": "待支部审核",
    "chief_approved": "待社区审核",
    "approved": "已通过",
    "rejected": "已驳回",
}


class PointRule(Base):
    """One version of a rule of the rulebook: a change of points is a new row from its date."""

    __tablename__ = "point_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(20), server_default="member")
    points: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint("kind IN ('履职分', '奖励分', '负面分')", name="kind_known"),
        CheckConstraint("subject IN ('member', 'household')", name="subject_known"),
        CheckConstraint(
            "(kind = '负面分' AND points < 0) OR (kind <> '负面分' AND points > 0)",
            name="sign_of_kind",
        ),
        UniqueConstraint("code", "version"),
    )


class PointEntry(Base):
    """A party member's entry: proposed, reviewed by a chief, then by the centre."""

    __tablename__ = "point_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("worker.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("point_rule.id", ondelete="RESTRICT"))
    occurred_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case.id", ondelete="SET NULL"))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visit.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), server_default="proposed")
    proposed_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    proposed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    chief_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    chief_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    chief_decision: Mapped[str | None] = mapped_column(String(10))
    chief_note: Mapped[str | None] = mapped_column(Text)
    centre_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    centre_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    centre_decision: Mapped[str | None] = mapped_column(String(10))
    centre_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "status IN ('proposed', 'chief_approved', 'approved', 'rejected')", name="status_known"
        ),
        Index("ix_point_entry_member_id_occurred_on", "member_id", "occurred_on"),
    )


class HouseholdPointEntry(Base):
    """Points given to a household under a rule of the village."""

    __tablename__ = "household_point_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("point_rule.id", ondelete="RESTRICT"))
    occurred_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_household_point_entry_household_id_occurred_on", "household_id", "occurred_on"),
    )


class PointExchange(Base):
    """Points a household spent at the 积分超市."""

    __tablename__ = "point_exchange"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id", ondelete="CASCADE"))
    points: Mapped[int] = mapped_column(Integer)
    item: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_point_exchange_household_id", "household_id"),
    )

"""Points ledgers (积分): the versioned rulebook, party members' entries with their two-step
review, households' entries and the exchanges at the 积分超市. Totals are sums, never stored."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
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
    # An automatic entry names the record that made it; ``points`` (a share) overrides the rule's.
    source_kind: Mapped[str | None] = mapped_column(String(20))
    source_id: Mapped[int | None] = mapped_column(Integer)
    points: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(
            "status IN ('proposed', 'chief_approved', 'approved', 'rejected')", name="status_known"
        ),
        CheckConstraint("(source_kind IS NULL) = (source_id IS NULL)", name="source_named"),
        CheckConstraint("points IS NULL OR points <> 0", name="points_not_zero"),
        Index("ix_point_entry_member_id_occurred_on", "member_id", "occurred_on"),
        Index(
            "uq_point_entry_source",
            "member_id",
            "source_kind",
            "source_id",
            unique=True,
            postgresql_where=text("source_kind IS NOT NULL"),
        ),
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


class PointSetting(Base):
    """A setting of the points and star ratings (defaults in ``app.services.points``)."""

    __tablename__ = "point_setting"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))


class StarAdjustment(Base):
    """A chief's adjustment of a micro-grid's stars in an open quarter, with its reason."""

    __tablename__ = "star_adjustment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id", ondelete="CASCADE"))
    quarter: Mapped[str] = mapped_column(String(6))
    delta: Mapped[int] = mapped_column(SmallInteger)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("delta BETWEEN -2 AND 2", name="delta_range"),
        CheckConstraint("char_length(btrim(reason)) >= 2", name="reason_given"),
        Index("ix_star_adjustment_grid_id_quarter", "grid_id", "quarter"),
    )


class StarQuarter(Base):
    """A closed quarter: its ratings are frozen with the settings they were computed with."""

    __tablename__ = "star_quarter"

    quarter: Mapped[str] = mapped_column(String(6), primary_key=True)
    settings: Mapped[Any] = mapped_column(JSONB)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StarRating(Base):
    """A micro-grid's frozen rating of a closed quarter (the history per grid)."""

    __tablename__ = "star_rating"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grid.id", ondelete="CASCADE"))
    quarter: Mapped[str] = mapped_column(
        ForeignKey("star_quarter.quarter", ondelete="CASCADE"), type_=String(6)
    )
    scores: Mapped[Any] = mapped_column(JSONB)
    score: Mapped[float] = mapped_column(Float)
    computed_stars: Mapped[int] = mapped_column(SmallInteger)
    adjustment: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    adjustment_reason: Mapped[str | None] = mapped_column(Text)
    stars: Mapped[int] = mapped_column(SmallInteger)

    __table_args__ = (
        CheckConstraint("stars BETWEEN 0 AND 5", name="stars_range"),
        UniqueConstraint("grid_id", "quarter"),
    )


class ServicePointRating(Base):
    """An inspector's rating of a party-mass service point (硬件完善、组织健全、工作规范、作用明显)."""

    __tablename__ = "service_point_rating"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_point_id: Mapped[int] = mapped_column(
        ForeignKey("service_point.id", ondelete="CASCADE")
    )
    quarter: Mapped[str] = mapped_column(String(6))
    hardware: Mapped[int] = mapped_column(SmallInteger)
    organisation: Mapped[int] = mapped_column(SmallInteger)
    norms: Mapped[int] = mapped_column(SmallInteger)
    effect: Mapped[int] = mapped_column(SmallInteger)
    stars: Mapped[int] = mapped_column(SmallInteger)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "hardware BETWEEN 0 AND 25 AND organisation BETWEEN 0 AND 25 AND norms BETWEEN 0 AND 25"
            " AND effect BETWEEN 0 AND 25",
            name="scores_range",
        ),
        Index("ix_service_point_rating_service_point_id_quarter", "service_point_id", "quarter"),
    )


class ServicePointRatingPhoto(Base):
    """A photo of an inspection, re-encoded without metadata."""

    __tablename__ = "service_point_rating_photo"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rating_id: Mapped[int] = mapped_column(
        ForeignKey("service_point_rating.id", ondelete="CASCADE")
    )
    content: Mapped[bytes] = mapped_column(LargeBinary)
    mime: Mapped[str] = mapped_column(String(30))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_service_point_rating_photo_rating_id", "rating_id"),)

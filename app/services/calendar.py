"""Working-time arithmetic on a configurable calendar: weekends, public holidays, make-up days.

Time limits are counted in working hours and working days (``add_working_hours``,
``add_working_days``, ``add_time_limit`` for "2 days and 4 hours"); a working day is the sum
of the day's work periods.

A day is a working day when the calendar says so (a make-up working day 调休上班 on a weekend,
or a holiday on a weekday), otherwise when it is Monday to Friday. Within a working day only the
work periods count (08:30–12:00 and 13:30–18:00 by default). Deadlines are computed in local
time (Asia/Shanghai by default) and returned as aware datetimes.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import delete, extract, select, text
from sqlalchemy.orm import Session

from app.errors import BadParameter, ValidationFailed
from app.models import CaseSetting, WorkCalendarDay

LOGGER = logging.getLogger(__name__)

DEFAULT_PERIODS = (("08:30", "12:00"), ("13:30", "18:00"))
DEFAULT_TIMEZONE = "Asia/Shanghai"
# Deadline arithmetic refuses to search further than this for working time.
MAX_DAYS = 3660
DATA_FILE = Path(__file__).resolve().parents[2] / "data" / "calendar" / "cn_workdays.csv"


def _clock(value: str) -> time:
    try:
        hh, mm = value.split(":")
        return time(int(hh), int(mm))
    except ValueError as exc:
        raise ValidationFailed(f"work period time '{value}' is not HH:MM") from exc


@dataclass(frozen=True)
class WorkCalendar:
    """A calendar: day overrides (date -> is working day), daily work periods and a time zone."""

    overrides: Mapping[date, bool] = field(default_factory=dict)
    periods: tuple[tuple[time, time], ...] = tuple(
        (_clock(a), _clock(b)) for a, b in DEFAULT_PERIODS
    )
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def build(
        cls,
        overrides: Mapping[date, bool] | None = None,
        periods: Iterable[Iterable[str]] = DEFAULT_PERIODS,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> WorkCalendar:
        """Build a calendar from overrides and periods given as ("HH:MM", "HH:MM") pairs."""
        parsed = tuple((_clock(a), _clock(b)) for a, b in (tuple(p) for p in periods))
        last = time(0, 0)
        for start, end in parsed:
            if not (last <= start < end):
                raise ValidationFailed(
                    f"work periods must be ordered and not overlap: {start:%H:%M}–{end:%H:%M}"
                )
            last = end
        if not parsed:
            raise ValidationFailed("a calendar needs at least one work period")
        return cls(dict(overrides or {}), parsed, timezone)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hours_per_day(self) -> float:
        return sum(_seconds(a, b) for a, b in self.periods) / 3600.0

    def is_workday(self, day: date) -> bool:
        """Say whether ``day`` is a working day (override first, then Monday–Friday)."""
        if day in self.overrides:
            return self.overrides[day]
        return day.weekday() < 5

    def _local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValidationFailed(f"{moment.isoformat()} has no time zone")
        return moment.astimezone(self.tz)

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """Return the moment ``hours`` working hours after ``start``."""
        if hours < 0:
            raise ValidationFailed(f"cannot add {hours} working hours (negative)")
        local = self._local(start)
        remaining = timedelta(hours=hours)
        if remaining == timedelta(0):
            return local
        day = local.date()
        for _ in range(MAX_DAYS):
            if self.is_workday(day):
                for p_start, p_end in self.periods:
                    begin = datetime.combine(day, p_start, self.tz)
                    end = datetime.combine(day, p_end, self.tz)
                    if local >= end:
                        continue
                    begin = max(begin, local)
                    available = end - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
            day += timedelta(days=1)
        raise ValidationFailed(f"no working time within {MAX_DAYS} days of {start.isoformat()}")

    def add_working_days(self, start: datetime, days: float) -> datetime:
        """Return the moment ``days`` working days after ``start``.

        A working day is the whole of its work periods: from 10:00 on a working day, one working
        day later is 10:00 on the next working day (holidays skipped, make-up days counted);
        from outside working time (an evening, a Sunday) the count starts at the next period,
        so one working day is the end of the next working day.
        """
        if days < 0:
            raise ValidationFailed(f"cannot add {days} working days (negative)")
        return self.add_working_hours(start, days * self.hours_per_day)

    def add_time_limit(self, start: datetime, *, days: float = 0, hours: float = 0) -> datetime:
        """Return the deadline of a time limit of ``days`` working days and ``hours`` working
        hours (e.g. 2 days and 4 hours) counted from ``start``."""
        if days < 0 or hours < 0:
            raise ValidationFailed(f"a time limit cannot be negative ({days} days, {hours} hours)")
        return self.add_working_hours(start, days * self.hours_per_day + hours)

    def working_days_between(self, start: datetime, end: datetime) -> float:
        """Return the working days from ``start`` to ``end`` (working hours / hours per day)."""
        return self.working_hours_between(start, end) / self.hours_per_day

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Return the working hours from ``start`` to ``end`` (negative when end is earlier)."""
        a, b = self._local(start), self._local(end)
        if b < a:
            return -self.working_hours_between(end, start)
        total = timedelta(0)
        day = a.date()
        while day <= b.date():
            if self.is_workday(day):
                for p_start, p_end in self.periods:
                    lo = max(datetime.combine(day, p_start, self.tz), a)
                    hi = min(datetime.combine(day, p_end, self.tz), b)
                    if hi > lo:
                        total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds() / 3600.0


def _seconds(a: time, b: time) -> float:
    return (datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()


def load_calendar(
    session: Session,
    *,
    periods: Iterable[Iterable[str]] | None = None,
    timezone: str | None = None,
) -> WorkCalendar:
    """Return the calendar stored in ``work_calendar`` with the configured work periods."""
    if periods is None or timezone is None:
        # The case-loop settings hold the work periods and the time zone (these defaults are
        # theirs: app.services.cases.settings.SETTINGS_DEFAULTS takes them from here).
        stored = dict(
            session.execute(
                select(CaseSetting.key, CaseSetting.value).where(
                    CaseSetting.key.in_(("work_periods", "timezone"))
                )
            ).all()
        )
        periods = periods if periods is not None else stored.get("work_periods", DEFAULT_PERIODS)
        timezone = timezone or stored.get("timezone", DEFAULT_TIMEZONE)
    overrides = dict(session.execute(select(WorkCalendarDay.day, WorkCalendarDay.is_workday)).all())
    return WorkCalendar.build(overrides, periods, timezone)


def read_calendar_file(path: str | Path) -> list[dict[str, object]]:
    """Read a calendar CSV (date,is_workday,name,source) and check every row."""
    rows: list[dict[str, object]] = []
    problems: list[str] = []
    with Path(path).open(encoding="utf-8", newline="") as fh:
        for n, raw in enumerate(csv.DictReader(fh), start=2):
            try:
                day = date.fromisoformat((raw.get("date") or "").strip())
            except ValueError:
                problems.append(f"row {n}: date '{raw.get('date')}' is not YYYY-MM-DD")
                continue
            flag = (raw.get("is_workday") or "").strip().lower()
            if flag not in ("true", "false"):
                problems.append(f"row {n}: is_workday '{raw.get('is_workday')}' is not true/false")
                continue
            rows.append(
                {
                    "day": day,
                    "is_workday": flag == "true",
                    "name": (raw.get("name") or "").strip()
                    or ("调休上班" if flag == "true" else "休"),
                    "source": (raw.get("source") or "").strip() or None,
                }
            )
    if problems:
        raise ValidationFailed(f"{path}: " + "; ".join(problems[:10]), problems=problems)
    days = [r["day"] for r in rows]
    if len(days) != len(set(days)):
        raise ValidationFailed(f"{path}: a date is listed twice")
    return rows


def replace_years(session: Session, rows: list[dict[str, object]]) -> list[int]:
    """Replace the calendar rows of every year the given rows name; return those years."""
    years = sorted({r["day"].year for r in rows})  # type: ignore[attr-defined]
    if not years:
        raise BadParameter("file", "holds no calendar rows")
    session.execute(delete(WorkCalendarDay).where(extract("year", WorkCalendarDay.day).in_(years)))
    session.add_all(WorkCalendarDay(**r) for r in rows)  # type: ignore[arg-type]
    session.flush()
    LOGGER.info("calendar: replaced years %s with %d rows", years, len(rows))
    return years


def calendar_rows(session: Session, year: int | None = None) -> list[dict[str, object]]:
    """Return the stored overrides, optionally of one year, in date order."""
    stmt = select(WorkCalendarDay).order_by(WorkCalendarDay.day)
    if year is not None:
        stmt = stmt.where(extract("year", WorkCalendarDay.day) == year)
    return [
        {"date": d.day.isoformat(), "is_workday": d.is_workday, "name": d.name, "source": d.source}
        for d in session.scalars(stmt)
    ]


# A fingerprint of the stored calendar, read with every case report so that the cache below
# never serves a calendar another process has since changed.
CALENDAR_STAMP_SQL = (
    "SELECT count(*) || ':' || coalesce(sum(hashtextextended(w.day::text || w.is_workday::text,"
    " 0)), 0) FROM work_calendar w"
)
_CALENDAR_ROWS_SQL = text(
    f"""
    SELECT coalesce(json_agg(json_build_array(w.day, w.is_workday) ORDER BY w.day), '[]'),
           ({CALENDAR_STAMP_SQL})
    FROM work_calendar w
    """
)


class _CalendarCache:
    """Work calendars by (calendar fingerprint, work periods, time zone).

    The fingerprint is read with every report (a digest of the few dozen override rows), so a
    calendar loaded or edited by any process is seen by the next report; nothing goes stale.
    """

    def __init__(self, size: int = 8) -> None:
        self._items: dict[tuple[str, str, str], WorkCalendar] = {}
        self._size = size
        self._lock = threading.Lock()

    def get(
        self, session: Session, stamp: str, periods: list[list[str]], timezone: str
    ) -> WorkCalendar:
        shape = json.dumps(periods)
        found = self._items.get((stamp, shape, timezone))
        if found is not None:
            return found
        rows, current = session.execute(_CALENDAR_ROWS_SQL).one()
        calendar = WorkCalendar.build(
            {date.fromisoformat(d): bool(w) for d, w in rows}, periods, timezone
        )
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            # Keyed by the fingerprint of what was read, which may be newer than ``stamp``.
            self._items[(current, shape, timezone)] = calendar
        return calendar


CALENDARS = _CalendarCache()

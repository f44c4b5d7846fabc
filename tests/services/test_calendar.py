"""Deadline arithmetic in working hours across weekends, public holidays and make-up days."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import ValidationFailed
from app.services import calendar as cal
from app.services import cases as svc

CST = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=CST)


@pytest.fixture()
def calendar(db_session) -> cal.WorkCalendar:  # type: ignore[no-untyped-def]
    """The seeded calendar with the default work periods (08:30–12:00, 13:30–18:00)."""
    return cal.load_calendar(db_session)


def test_plain_week_counts_only_work_periods() -> None:
    c = cal.WorkCalendar.build()
    assert c.hours_per_day == 8.0
    # Monday 2026-11-23 09:00 + 2 h -> 11:00; + 4 h crosses lunch -> 14:30.
    assert c.add_working_hours(at(2026, 11, 23, 9), 2) == at(2026, 11, 23, 11)
    assert c.add_working_hours(at(2026, 11, 23, 9), 4) == at(2026, 11, 23, 14, 30)
    # Reported at lunch or in the evening: the clock starts at the next period.
    assert c.add_working_hours(at(2026, 11, 23, 12, 30), 1) == at(2026, 11, 23, 14, 30)
    assert c.add_working_hours(at(2026, 11, 23, 20), 1) == at(2026, 11, 24, 9, 30)
    # Exactly a period's end stays on that day.
    assert c.add_working_hours(at(2026, 11, 23, 8, 30), 3.5) == at(2026, 11, 23, 12)


def test_weekend_is_skipped() -> None:
    c = cal.WorkCalendar.build()
    # Friday 2026-11-27 17:00 + 4 h: 1 h on Friday, 3 h on Monday.
    assert c.add_working_hours(at(2026, 11, 27, 17), 4) == at(2026, 11, 30, 11, 30)
    # Saturday report, 8 h: the whole of Monday.
    assert c.add_working_hours(at(2026, 11, 28, 10), 8) == at(2026, 11, 30, 18)


def test_seeded_spring_festival_and_make_up_days(calendar: cal.WorkCalendar) -> None:
    # 2026: 2-14 (Sat) is a make-up working day, 2-15 .. 2-23 off, 2-28 (Sat) worked.
    assert calendar.is_workday(date(2026, 2, 14))
    assert not any(calendar.is_workday(date(2026, 2, d)) for d in range(15, 24))
    assert calendar.is_workday(date(2026, 2, 24))
    assert calendar.is_workday(date(2026, 2, 28))
    # Friday 2026-02-13 17:00 + 4 h: 1 h on Friday, 3 h on the make-up Saturday.
    assert calendar.add_working_hours(at(2026, 2, 13, 17), 4) == at(2026, 2, 14, 11, 30)
    # From the make-up Saturday's end, 8 h cross nine holiday days to Tuesday 2-24.
    assert calendar.add_working_hours(at(2026, 2, 14, 18), 8) == at(2026, 2, 24, 18)


def test_seeded_national_day_2025_and_its_make_up_days(calendar: cal.WorkCalendar) -> None:
    # 9-28 (Sun) worked, 10-1 .. 10-8 off, 10-11 (Sat) worked.
    assert calendar.is_workday(date(2025, 9, 28))
    assert [calendar.is_workday(date(2025, 10, d)) for d in range(1, 12)] == [
        False, False, False, False, False, False, False, False, True, True, True,
    ]  # fmt: skip
    # Tuesday 9-30 17:00 + 24 h = 1 h on 9-30, 8 h each on 10-9 and 10-10, and the last 7 h on
    # Saturday 10-11, a make-up working day.
    assert calendar.add_working_hours(at(2025, 9, 30, 17), 24) == at(2025, 10, 11, 17)


def test_single_day_holiday_on_a_wednesday(calendar: cal.WorkCalendar) -> None:
    # 2025-01-01 (Wed) off, no make-up day.
    assert calendar.add_working_hours(at(2024, 12, 31, 17), 2) == at(2025, 1, 2, 9, 30)


def test_2027_statutory_holidays_are_seeded(calendar: cal.WorkCalendar) -> None:
    assert not calendar.is_workday(date(2027, 2, 8))  # 初三, a Monday
    assert not calendar.is_workday(date(2027, 2, 10))  # made up for 初一 on a Saturday
    assert calendar.is_workday(date(2027, 2, 11))


def test_working_hours_between_matches_add(calendar: cal.WorkCalendar) -> None:
    start = at(2026, 9, 30, 10)
    end = calendar.add_working_hours(start, 20)
    assert calendar.working_hours_between(start, end) == pytest.approx(20)
    assert calendar.working_hours_between(end, start) == pytest.approx(-20)


@settings(max_examples=60, deadline=None)
@given(
    offset_min=st.integers(min_value=0, max_value=60 * 24 * 700),
    hours=st.floats(min_value=0.25, max_value=120, allow_nan=False),
)
def test_add_then_measure_round_trips(offset_min: int, hours: float) -> None:
    c = cal.WorkCalendar.build(
        {date(2026, 2, d): False for d in range(15, 24)} | {date(2026, 2, 14): True}
    )
    start = at(2025, 6, 1) + timedelta(minutes=offset_min)
    end = c.add_working_hours(start, hours)
    assert end >= start
    assert c.working_hours_between(start, end) == pytest.approx(hours, abs=1e-6)
    # The deadline always falls inside a work period of a working day.
    local = end.astimezone(CST)
    assert c.is_workday(local.date())
    assert any(a <= local.time() <= b for a, b in c.periods)


def test_bad_periods_and_naive_times_are_refused() -> None:
    with pytest.raises(ValidationFailed):
        cal.WorkCalendar.build({}, [("13:00", "12:00")])
    with pytest.raises(ValidationFailed):
        cal.WorkCalendar.build().add_working_hours(datetime(2026, 1, 5, 9), 1)


def test_calendar_file_replaces_the_years_it_names(db_session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "2027.csv"
    f.write_text(
        "date,is_workday,name,source\n2027-02-04,false,春节,通知\n2027-02-20,true,春节调休上班,通知\n",
        encoding="utf-8",
    )
    years = cal.replace_years(db_session, cal.read_calendar_file(f))
    assert years == [2027]
    c = cal.load_calendar(db_session)
    assert not c.is_workday(date(2027, 2, 4)) and c.is_workday(date(2027, 2, 20))
    assert c.is_workday(date(2027, 2, 8))  # the 2027 seed rows were replaced
    assert not c.is_workday(date(2026, 2, 16))  # 2026 untouched
    bad = tmp_path / "bad.csv"
    bad.write_text("date,is_workday,name,source\n2027-13-01,maybe,x,y\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="row 2"):
        cal.read_calendar_file(bad)


def test_working_days_skip_weekends_and_holidays_and_count_make_up_days(
    calendar: cal.WorkCalendar,
) -> None:
    # Thursday 2026-11-26 10:00 + 2 working days: Friday, then Monday (the weekend skipped).
    assert calendar.add_working_days(at(2026, 11, 26, 10), 2) == at(2026, 11, 30, 10)
    # Friday 2026-02-13 10:00 + 1 day: Saturday 2-14 is a make-up working day.
    assert calendar.add_working_days(at(2026, 2, 13, 10), 1) == at(2026, 2, 14, 10)
    # + 2 days: the nine days of the Spring Festival are skipped to Tuesday 2-24.
    assert calendar.add_working_days(at(2026, 2, 13, 10), 2) == at(2026, 2, 24, 10)
    # National Day 2025: Tuesday 9-30 10:00 + 3 days = 10-9, 10-10, and Saturday 10-11 (made up).
    assert calendar.add_working_days(at(2025, 9, 30, 10), 3) == at(2025, 10, 11, 10)
    # From outside working time the count starts at the next period: a Sunday-evening report
    # with one working day is due at the end of Monday.
    assert calendar.add_working_days(at(2026, 11, 29, 21), 1) == at(2026, 11, 30, 18)
    # Half a day from 09:00: 4 working hours, across lunch.
    assert calendar.add_working_days(at(2026, 11, 23, 9), 0.5) == at(2026, 11, 23, 14, 30)
    assert calendar.working_days_between(at(2026, 2, 13, 10), at(2026, 2, 24, 10)) == 2


def test_time_limit_in_days_and_hours(calendar: cal.WorkCalendar) -> None:
    # 1 working day and 3 hours from Friday 2026-11-27 16:00: Monday 16:00, then 2 h that day
    # and 1 h on Tuesday.
    assert calendar.add_time_limit(at(2026, 11, 27, 16), days=1, hours=3) == at(2026, 12, 1, 9, 30)
    assert calendar.add_time_limit(at(2026, 11, 27, 16), hours=3) == calendar.add_working_hours(
        at(2026, 11, 27, 16), 3
    )
    with pytest.raises(ValidationFailed):
        calendar.add_time_limit(at(2026, 11, 27, 16), days=-1)
    # Shorter work periods make shorter days.
    short = cal.WorkCalendar.build({}, [("09:00", "12:00")])
    assert short.add_working_days(at(2026, 11, 27, 10), 1) == at(2026, 11, 30, 10)


def test_deadline_api_takes_days_and_hours(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/api/calendar/deadline?start=2026-02-13T10:00:00%2B08:00&days=2&hours=1")
    assert res.status_code == 200, res.get_json()
    body = res.get_json()
    assert datetime.fromisoformat(body["deadline"]) == at(2026, 2, 24, 11)
    assert body["hours_per_day"] == 8.0
    assert client.get("/api/calendar/deadline?days=-1").status_code == 400
    assert client.get("/api/calendar/deadline").status_code == 400
    assert client.get("/api/calendar/deadline?hours=x").status_code == 400


def test_categories_state_their_limit_in_working_days_and_hours(client) -> None:  # type: ignore[no-untyped-def]
    cats = {c["code"]: c for c in client.get("/api/case-categories").get_json()}
    assert cats["streetlight"]["time_limit"] == {"days": 3, "hours": 0}  # 24 working hours
    assert cats["fire_hazard"]["time_limit"] == {"days": 0, "hours": 4}
    assert cats["illegal_building"]["time_limit_days"] == 5


def test_a_report_s_deadline_follows_the_calendar(db_session) -> None:  # type: ignore[no-untyped-def]
    # Reported Friday 2026-02-13 at 17:00 (China time): 4 working hours for a fire hazard
    # are 1 h on Friday and 3 h on the make-up Saturday; 3 days for a streetlight run past
    # the Spring Festival.
    fire = svc.create_case(
        db_session,
        svc.Report(x=117.2287344, y=31.8149002, category="fire_hazard"),
        now=at(2026, 2, 13, 17),
    )["case"]
    light = svc.create_case(
        db_session,
        svc.Report(x=117.2287344, y=31.8149002, category="streetlight"),
        now=at(2026, 2, 13, 17),
    )["case"]
    assert datetime.fromisoformat(fire["deadline"]) == at(2026, 2, 14, 11, 30)
    # 1 h Friday, 8 h on the make-up Saturday 2-14, 8 h on 2-24, the last 7 h on 2-25.
    assert datetime.fromisoformat(light["deadline"]) == at(2026, 2, 25, 17)

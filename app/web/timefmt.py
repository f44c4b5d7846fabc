"""How pages write a time: China time (Asia/Shanghai), ``YYYY-MM-DD HH:mm``."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def china_time(value: datetime | date | str | None) -> str:
    """Return ``value`` as China time ``YYYY-MM-DD HH:mm`` (a naive time is taken as UTC; a
    date stays a date; empty for None)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo("UTC"))
        return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()

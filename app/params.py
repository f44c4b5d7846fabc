"""Parse and check request parameters; every failure names the parameter and says why.

One set for every view (``app.api``, ``app.web``, ``app.auth``): query parameters (``*_arg``),
body fields of JSON or a form (``*_field``, ``json_body``, ``body_fields``) and dates
(``moment``). A view parses with these and hands plain values to one service call."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from flask import request

from app.errors import BadParameter

#: The largest value of a PostgreSQL ``integer`` (every id column).
MAX_INT = 2**31 - 1
#: Dates and times without an offset are China time.
CHINA = ZoneInfo("Asia/Shanghai")
#: Words read as yes and as no (query strings and form fields carry no JSON booleans).
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "是"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "否"})


def body_fields() -> dict[str, Any]:
    """Return the request's fields from JSON or from a form (multipart or urlencoded)."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadParameter("body", "must be a JSON object")
        return data
    return {k: v for k, v in request.form.items()}


def json_body(*, required: bool = False) -> dict[str, Any]:
    """Return the request's JSON object; an empty body is ``{}`` unless ``required``."""
    body = request.get_json(silent=True)
    if body is None and not request.data and not required:
        return {}
    if not isinstance(body, dict):
        raise BadParameter("body", "send a JSON object")
    return body


def int_value(
    raw: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    strict: bool = False,
) -> int | None:
    """Return ``raw`` as an integer, or None when it is absent (None, or "" unless ``strict``).

    ``strict``: only a JSON whole number will do; otherwise digits in text count too (form
    fields, query strings). Never beyond a PostgreSQL ``integer``."""
    maximum = MAX_INT if maximum is None else min(maximum, MAX_INT)
    if raw is None or (raw == "" and not strict):
        return None
    if isinstance(raw, bool) or (strict and not isinstance(raw, int)):
        raise BadParameter(name, f"{raw!r} is not a whole number")
    try:
        value = int(raw)
    except (TypeError, ValueError) as exc:
        raise BadParameter(name, f"'{raw}' is not an integer") from exc
    if minimum is not None and value < minimum or value > maximum:
        raise BadParameter(name, f"{value} is outside {minimum}..{maximum}")
    return value


def int_field(
    data: Mapping[str, Any],
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
    strict: bool = False,
) -> int | None:
    """Return an integer field of a body (see ``int_value``), ``default`` when it is missing."""
    return int_value(data.get(name, default), name, minimum=minimum, maximum=maximum, strict=strict)


def str_field(
    data: Mapping[str, Any], name: str, *, max_length: int = 200, default: str | None = None
) -> str | None:
    """Return a text field of a JSON body stripped of blanks, ``default`` when it is missing,
    null or blank. Anything but a JSON string (a number, a list, an object, true or false) is
    refused, never turned into text."""
    raw = data.get(name)
    if raw is None:
        return default
    if not isinstance(raw, str):
        raise BadParameter(name, f"must be text, not {type(raw).__name__} {raw!r:.40}")
    value = raw.strip()
    if not value:
        return default
    if len(value) > max_length:
        raise BadParameter(name, f"longer than {max_length} characters")
    return value


def bool_value(
    raw: Any, name: str, *, default: bool | None = None, strict: bool = False
) -> bool | None:
    """Return ``raw`` as a yes/no, ``default`` when it is absent (None, or "" unless ``strict``).

    ``strict``: only a JSON boolean will do; otherwise the words of ``TRUE_WORDS`` and
    ``FALSE_WORDS`` count too."""
    if raw is None or (raw == "" and not strict):
        return default
    if isinstance(raw, bool):
        return raw
    if not strict:
        word = str(raw).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise BadParameter(name, f"'{raw}' is not true or false (1/0, true/false, yes/no)")


def bool_field(
    data: Mapping[str, Any], name: str, *, default: bool | None = None, strict: bool = False
) -> bool | None:
    """Return a yes/no field of a body (see ``bool_value``), ``default`` when it is missing."""
    return bool_value(data.get(name), name, default=default, strict=strict)


def int_arg(
    name: str, *, minimum: int | None = None, maximum: int | None = None, default: int | None = None
) -> int | None:
    """Return an integer query parameter, or ``default`` when it is absent."""
    maximum = MAX_INT if maximum is None else min(maximum, MAX_INT)
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadParameter(name, f"'{raw}' is not an integer") from exc
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        raise BadParameter(name, f"{value} is outside {minimum}..{maximum}")
    return value


def bbox_arg(name: str = "bbox") -> tuple[float, float, float, float] | None:
    """Return a bbox=minlon,minlat,maxlon,maxlat parameter, checked for range and order."""
    raw = request.args.get(name)
    if not raw:
        return None
    parts = raw.split(",")
    if len(parts) != 4:
        raise BadParameter(name, f"'{raw}' must be minlon,minlat,maxlon,maxlat")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError as exc:
        raise BadParameter(name, f"'{raw}' holds a value that is not a number") from exc
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise BadParameter(name, f"'{raw}' is out of range (lon -180..180, lat -90..90)")
    if x0 > x1 or y0 > y1:
        raise BadParameter(name, f"'{raw}': min must not exceed max")
    return x0, y0, x1, y1


def float_arg(
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    default: float | None = None,
) -> float | None:
    """Return a finite number query parameter, or ``default`` when it is absent."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise BadParameter(name, f"'{raw}' is not a number") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise BadParameter(name, f"'{raw}' is not a finite number")
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        raise BadParameter(name, f"{value} is outside {minimum}..{maximum}")
    return value


def str_arg(name: str, *, max_length: int = 200) -> str | None:
    """Return a text query parameter stripped of blanks, or None when absent or empty."""
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return None
    if len(raw) > max_length:
        raise BadParameter(name, f"longer than {max_length} characters")
    return raw.strip()


def bool_arg(name: str, *, default: bool | None = False) -> bool | None:
    """Return a yes/no query parameter (1/0, true/false, yes/no, on/off), ``default`` when absent."""
    return bool_value(request.args.get(name), name, default=default)


def moment(
    name: str, raw: str | None, *, day: Literal["start", "next", "end"] = "start"
) -> datetime | None:
    """Parse an ISO date or date-time from a request (None when absent).

    A date-time without an offset, and a bare date, are China time. A bare date means the
    start of that day, or with ``day="next"`` the start of the next (an exclusive end), or with
    ``day="end"`` its last instant (the state in force on that day). "Z" means UTC; an
    unencoded "+08:00" after a time arrives as " 08:00" and is read as such."""
    if raw is None or not str(raw).strip():
        return None
    text = re.sub(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$", r"\1+\2", str(raw).strip())
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            d = date.fromisoformat(text)
            if day == "end":
                return datetime.combine(d, time.max, CHINA)
            start = datetime.combine(d, time(0), CHINA)
            return start + timedelta(days=1) if day == "next" else start
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadParameter(name, f"'{raw}' is not an ISO date or date-time") from exc
    return value if value.tzinfo else value.replace(tzinfo=CHINA)


def moment_arg(name: str, *, day: Literal["start", "next", "end"] = "start") -> datetime | None:
    """Return a date or date-time query parameter (see ``moment``), None when absent."""
    return moment(name, request.args.get(name), day=day)

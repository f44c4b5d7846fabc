"""Open311 GeoReport v2 mapped onto cases: services are categories, requests are cases.

- ``service_code`` is the category code; ``service_request_id`` is the case's public code (the
  unguessable one residents get; ids and internal codes are not accepted). The answer to a new
  request carries the extension field ``secret``: the reporter's proof for rating it.
- Without signing in, requests are read only by their codes: nobody lists other people's cases.
- ``lat``/``long`` are WGS84 as the standard says; the extension field ``crs`` (wgs84, cgcs2000,
  gcj02, bd09, EPSG:…) lets Chinese clients send the coordinates of their map as they are.
- ``status`` is ``open`` until the case is closed or cancelled; ``status_notes`` carries the
  platform's own state in Chinese and the latest handling note.
- ``email``/``phone`` become the reporter contact and ``first_name``/``last_name`` the reporter
  name; both are masked in every answer. ``media_url`` is kept out: a photo comes as an uploaded
  ``media`` file (fetching URLs from the internet is not something an intranet server does).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter
from app.services import cases as svc
from app.services import public_cases

MAX_RESULTS = 1000
DEFAULT_SPAN = timedelta(days=90)


def services(session: Session) -> list[dict[str, Any]]:
    """Return the GeoReport service list: one service per active category."""
    return [
        {
            "service_code": c["code"],
            "service_name": c["name"],
            "description": c["description"] or c["name"],
            "metadata": False,
            "type": "realtime",
            "keywords": ",".join(c["camera_event_types"]),
            "group": c["escalation_department"]["name"] if c["escalation_department"] else "其他",
        }
        for c in svc.categories(session)
    ]


def _float(form: dict[str, Any], name: str) -> float | None:
    raw = form.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise BadParameter(name, f"'{raw}' is not a number") from exc
    if not math.isfinite(value):
        raise BadParameter(name, f"'{raw}' is not a finite number")
    return value


#: The request fields read from a GeoReport POST.
FIELDS = (
    "service_code",
    "lat",
    "long",
    "crs",
    "description",
    "address_string",
    "first_name",
    "last_name",
    "phone",
    "email",
    "idempotency_key",
)


def create_request(
    session: Session,
    form: dict[str, Any],
    *,
    media: bytes | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Create a case from a GeoReport POST; return (the GeoReport answer, whether it was new)."""
    for key in FIELDS:  # other keys are ignored, as GeoReport allows
        value = form.get(key)
        if isinstance(value, dict | list):
            raise BadParameter(key, "must be a single value, not a list or an object")
        if (
            value is not None
            and not isinstance(value, str | int | float)
            or isinstance(value, bool)
        ):
            raise BadParameter(key, "must be text or a number")
    code = form.get("service_code") or ""
    if not isinstance(code, str):
        raise BadParameter("service_code", "must be text (a service code)")
    code = code.strip()
    if not code:
        raise BadParameter("service_code", "is required")
    lat, lon = _float(form, "lat"), _float(form, "long")
    if lat is None or lon is None:
        raise BadParameter(
            "lat", "lat and long are required (address-only requests cannot be routed)"
        )
    name = " ".join(p for p in (form.get("last_name"), form.get("first_name")) if p) or None
    contact = (form.get("phone") or form.get("email") or "").strip() or None
    result = svc.create_case(
        session,
        svc.Report(
            x=lon,
            y=lat,
            crs=form.get("crs") or None,
            category=code,
            source="resident",
            description=(form.get("description") or "").strip() or None,
            reporter_contact=contact,
            reporter_name=name,
            address=(form.get("address_string") or "").strip() or None,
            idempotency_key=idempotency_key or form.get("idempotency_key") or None,
            photos=[media] if media else [],
        ),
        now=now,
    )
    case = result["case"]
    # Other cases are not named: their codes are what lets somebody read them.
    notice = f"处置时限：{case['deadline']}" if case["deadline"] else ""
    return (
        [
            {
                "service_request_id": case["public_code"],
                "service_notice": notice,
                "account_id": None,
                "secret": result.get("secret"),
            }
        ],
        result["created"],
    )


def _request(row: dict[str, Any], notes: dict[int, str | None], base_url: str) -> dict[str, Any]:
    closed = row["status"] in ("closed", "cancelled")
    # What a reader of a request sees quotes nobody's phone or the handler's name.
    scrub = svc.personal_scrubber([(row["assignee"] or {}).get("name"), *row.get("_names", [])])
    note = scrub(notes.get(row["id"]))
    responsible = (
        (row["department"] or {}).get("name") or (row["grid"] or {}).get("name") or "指挥中心"
    )
    return {
        "service_request_id": row["public_code"],
        "status": "closed" if closed else "open",
        "status_notes": row["status_name"] + (f"：{note}" if note else ""),
        "service_name": row["category_name"],
        "service_code": row["category"],
        "description": scrub(row["description"]),
        "agency_responsible": responsible,
        "service_notice": f"处置时限：{row['deadline']}" if row["deadline"] else "",
        "requested_datetime": row["created_at"],
        "updated_datetime": row["updated_at"],
        "expected_datetime": row["deadline"],
        "address": scrub(row["address"]) or "",
        "address_id": None,
        "zipcode": None,
        "lat": row["point"]["lat"],
        "long": row["point"]["lon"],
        "media_url": f"{base_url}{row['photo']}" if row.get("photo") else None,
    }


def _parse_time(name: str, raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadParameter(name, f"'{raw}' is not a W3C date-time") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def get_requests(
    session: Session,
    *,
    ids: list[str] | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    base_url: str = "",
    now: datetime | None = None,
    scope: Any = None,
) -> list[dict[str, Any]]:
    """Return GeoReport service requests: by id, or filtered (the last 90 days by default);
    ``scope`` (an ``app.auth.policy.CaseScope``) narrows the filtered list to what it lets one see."""
    now = now or datetime.now(UTC)
    if ids:
        rows = []
        for raw in ids[:MAX_RESULTS]:
            case = public_cases.find(session, raw)
            if case is None:
                continue
            found = svc.list_cases(session, svc.CaseFilter(code=case.code), limit=1, now=now)
            rows.extend(found["items"])
    else:
        start = _parse_time("start_date", start_date)
        end = _parse_time("end_date", end_date)
        if start is None and end is None:
            start = now - DEFAULT_SPAN
        states = None
        if status:
            if status not in ("open", "closed"):
                raise BadParameter("status", f"'{status}' is not open or closed")
            states = list(svc.FINAL_STATES) if status == "closed" else list(svc.OPEN_STATES)
        rows = svc.list_cases(
            session,
            svc.CaseFilter(
                category=service_code or None,
                status=states,
                created_from=start,
                created_to=end,
                **({"scope": scope} if scope is not None else {}),
            ),
            limit=MAX_RESULTS,
            now=now,
        )["items"]
    ids_ = [r["id"] for r in rows]
    notes: dict[int, str | None] = {}
    photos: dict[int, int] = {}
    if ids_:
        notes = dict(
            session.execute(
                text(
                    """SELECT DISTINCT ON (case_id) case_id, note FROM case_event
                       WHERE case_id = ANY(CAST(:ids AS integer[])) AND note IS NOT NULL
                         AND action IN ('resolve', 'cancel', 'reopen', 'rate')
                       ORDER BY case_id, at DESC, id DESC"""
                ),
                {"ids": ids_},
            ).all()
        )
        photos = dict(
            session.execute(
                text(
                    """SELECT DISTINCT ON (case_id) case_id, id FROM case_photo
                       WHERE case_id = ANY(CAST(:ids AS integer[])) ORDER BY case_id, id"""
                ),
                {"ids": ids_},
            ).all()
        )
        names = {
            i: [reporter, *svc.routing_names(routing)]
            for i, reporter, routing in session.execute(
                text(
                    'SELECT id, reporter_name, routing FROM "case" WHERE id = ANY(CAST(:ids AS integer[]))'
                ),
                {"ids": ids_},
            ).all()
        }
        for r in rows:
            r["_names"] = names.get(r["id"], [])
    for r in rows:
        r["photo"] = (
            f"/api/public/cases/{r['public_code']}/photos/{photos[r['id']]}"
            if r["id"] in photos
            else None
        )
    return [_request(r, notes, base_url) for r in rows]

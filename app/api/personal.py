"""Personal data on explicit request: one household, and the full value of a masked field.

Names and phones are masked everywhere; a full value comes only from a ``reveal`` call by a role
that needs it, for a record in the caller's grids, and every such call is written to the audit log
(which fields of which record, not their values).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from app.auth import current_principal, record_personal_read
from app.auth.policy import Forbidden, may_reveal, sees_tags
from app.db import get_session
from app.errors import BadParameter
from app.services import cases as case_svc
from app.services import grids as svc

bp = Blueprint("personal_api", __name__, url_prefix="/api")

HOUSEHOLD_FIELDS = ("head_name", "head_phone")
CASE_FIELDS = ("reporter_name", "reporter_contact")


def _revealable(kind: str, allowed: tuple[str, ...]) -> list[str]:
    """Check that the caller's role may see full values of ``kind``; return the fields asked."""
    p = current_principal()
    if not may_reveal(p, kind):
        raise Forbidden(f"角色 {p.role} 无权查看完整个人信息 / the role '{p.role}' may not")
    return _fields(allowed)


def _fields(allowed: tuple[str, ...]) -> list[str]:
    data: Any = request.get_json(silent=True) if request.is_json else dict(request.form)
    if not isinstance(data, dict):
        raise BadParameter("body", "must be a JSON object")
    raw = data.get("fields", data.get("field", list(allowed)))
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BadParameter("fields", f"a list of field names among {', '.join(allowed)}")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise BadParameter(
            "fields", f"unknown field(s) {', '.join(unknown)}; use {', '.join(allowed)}"
        )
    return list(dict.fromkeys(names))


@bp.get("/households/<int:household_id>")
def household(household_id: int):  # type: ignore[no-untyped-def]
    """One household in the caller's grids (names and phones masked; tags for those responsible)."""
    p = current_principal()
    tags = sees_tags(p)
    feature = svc.household(get_session(), household_id, personal=False, with_tags=tags)
    record_personal_read(
        "read household",
        "household",
        household_id,
        ["address", "head_name(masked)", "head_phone(masked)"] + (["tags"] if tags else []),
    )
    return jsonify(feature)


@bp.post("/households/<int:household_id>/reveal")
def reveal_household(household_id: int):  # type: ignore[no-untyped-def]
    """The full value of a household's masked fields (``fields``: head_name, head_phone); logged."""
    names = _revealable("household", HOUSEHOLD_FIELDS)
    feature = svc.household(get_session(), household_id, personal=True, with_tags=False)
    record_personal_read("reveal household", "household", household_id, names)
    return jsonify({"id": household_id, **{n: feature["properties"][n] for n in names}})


@bp.post("/cases/<ref>/reveal")
def reveal_case(ref: str):  # type: ignore[no-untyped-def]
    """The full reporter name / contact of a case (``fields``); logged."""
    names = _revealable("case", CASE_FIELDS)
    view = case_svc.case_view(get_session(), ref, personal=True, with_events=False)
    record_personal_read("reveal case", "case", view["id"], names)
    return jsonify({"id": view["id"], "code": view["code"], **{n: view.get(n) for n in names}})

"""Points ledgers API (积分): the rulebook, party members' entries and their review, households'
points and exchanges, the quarterly ranking."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.params import body_fields, int_arg, str_arg
from app.auth import current_principal
from app.auth.policy import grid_scope
from app.db import get_session, transaction
from app.errors import BadParameter
from app.services import points as svc
from app.services import points_auto

bp = Blueprint("points_api", __name__, url_prefix="/api/points")


@bp.get("/rules")
def list_rules():  # type: ignore[no-untyped-def]
    """Every version of every rule; ``subject=member|household`` narrows."""
    subject = str_arg("subject", max_length=20)
    if subject is not None and subject not in svc.SUBJECTS:
        raise BadParameter("subject", "适用对象（subject）须为 member 或 household")
    return jsonify({"rules": svc.list_rules(get_session(), subject=subject)})


@bp.post("/rules")
def save_rule():  # type: ignore[no-untyped-def]
    """Add a rule, or a new version of one (same code) applying from ``valid_from``."""
    data = body_fields()
    session = get_session()
    with transaction(session):
        rule = svc.save_rule(session, data, user_id=current_principal().user_id)
    return jsonify({"rule": rule}), 201


@bp.post("/entries")
def propose_entry():  # type: ignore[no-untyped-def]
    """A party member's entry, proposed by the member or by a chief over the member's grids."""
    data = body_fields()
    session = get_session()
    with transaction(session):
        entry = svc.propose_entry(session, current_principal(), data)
    return jsonify({"entry": entry}), 201


@bp.get("/entries/pending")
def pending_entries():  # type: ignore[no-untyped-def]
    """Entries waiting for the caller's review step, within the caller's grids."""
    return jsonify({"entries": svc.pending_entries(get_session(), current_principal())})


@bp.post("/entries/<int:entry_id>/review")
def review_entry(entry_id: int):  # type: ignore[no-untyped-def]
    """One step of the review: ``decision`` approve|reject and ``note``."""
    data = body_fields()
    session = get_session()
    with transaction(session):
        entry = svc.review_entry(session, current_principal(), entry_id, data)
    return jsonify({"entry": entry})


@bp.get("/members/<int:member_id>")
def member_ledger(member_id: int):  # type: ignore[no-untyped-def]
    """A member's ledger and the total of the approved entries."""
    return jsonify(svc.member_ledger(get_session(), member_id))


@bp.get("/households/<int:household_id>")
def household_ledger(household_id: int):  # type: ignore[no-untyped-def]
    """A household's entries, exchanges and balance."""
    return jsonify(svc.household_ledger(get_session(), household_id))


@bp.post("/households/<int:household_id>/entries")
def household_entry(household_id: int):  # type: ignore[no-untyped-def]
    data = body_fields()
    session = get_session()
    with transaction(session):
        entry = svc.add_household_entry(
            session, household_id, data, user_id=current_principal().user_id
        )
    return jsonify({"entry": entry}), 201


@bp.post("/households/<int:household_id>/exchange")
def exchange(household_id: int):  # type: ignore[no-untyped-def]
    """Spend points at the 积分超市 (409 when the balance is short)."""
    data = body_fields()
    session = get_session()
    with transaction(session):
        result = svc.exchange(session, household_id, data, user_id=current_principal().user_id)
    return jsonify({"exchange": result}), 201


@bp.get("/ranking")
def ranking():  # type: ignore[no-untyped-def]
    """``quarter=2026Q4&group=member|household|grid``, within the caller's grids."""
    session = get_session()
    group = str_arg("group", max_length=20) or "member"
    limit = int_arg("limit", minimum=1, maximum=1000, default=100) or 100
    p = current_principal()
    scope = grid_scope(session, p)
    return jsonify(
        svc.ranking(
            session,
            scope,
            quarter=str_arg("quarter", max_length=10),
            group=group,
            limit=limit,
            mask_names=not svc.sees_member_names(p.role),
        )
    )


@bp.post("/sync")
def sync():  # type: ignore[no-untyped-def]
    """Make the automatic entries from cases and linked households (each once)."""
    session = get_session()
    with transaction(session):
        made = points_auto.sync(session)
    return jsonify({"made": made})


@bp.get("/settings")
def get_settings():  # type: ignore[no-untyped-def]
    """The points and star-rating settings (defaults where none was saved)."""
    return jsonify({"settings": points_auto.get_settings(get_session())})


@bp.put("/settings")
def put_settings():  # type: ignore[no-untyped-def]
    """Change some settings ``{key: value}``; each is checked and the change audited."""
    data = body_fields()
    session = get_session()
    with transaction(session):
        settings = points_auto.update_settings(session, data, user_id=current_principal().user_id)
    return jsonify({"settings": settings})

"""Points ledgers (积分): the rulebook, party members' entries, households' points, the exchange
ledger of the 积分超市 and the quarterly ranking.

Definitions:
- A rule is a ``code`` with versions: a change of its points, name or state is a new row (version
  + 1) that applies from its ``valid_from`` on. An entry on a day takes the newest version whose
  ``valid_from`` is on or before that day, and keeps it (the row id) whatever changes later.
- A party member is a worker assigned to a grid in the role ``party_member``; the member's grids
  are those assignments.
- A member's entry counts once it is ``approved``: proposed → a chief over the member's grids
  approves (``chief_approved``) → the centre of the street or the administrator approves
  (``approved``); a rejection at either step ends it (``rejected``). Both steps keep who and when.
- A household's balance is the sum of its entries' points minus the points it exchanged; an
  exchange that would take it below zero is refused. Exchanges of one household are serialised
  by a transaction-level advisory lock, so two at once cannot both spend the same points.
- The ranking of a quarter sums the points of entries whose ``occurred_on`` falls in it (members:
  approved entries only). ``grid`` ranks the leaf grids holding households by the total of their
  households, with the average per household beside it. Exchanges never lower a ranking.
- Totals are always computed from the entries; none is stored.

Why one module of this size: the rulebook, the entries, the exchanges and the ranking share the
definitions above (rule versions by day, the approval steps, balances summed from the rows) and
each query restates them in SQL; kept together, each is written once.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter, Conflict, NotFound, ValidationFailed
from app.privacy import mask_name

CHINA = ZoneInfo("Asia/Shanghai")
KINDS = ("履职分", "奖励分", "负面分")
SUBJECTS = ("member", "household")
STATUS_ZH = {
    "proposed": "待支部审核",
    "chief_approved": "待社区审核",
    "approved": "已通过",
    "rejected": "已驳回",
}
CHIEFS = ("grid_chief", "micro_chief")
# What made an automatic entry (``point_entry.source_kind``; ``source_id`` is that record's id).
SOURCE_ZH = {
    "case_solved": "上报的事件已办结（事件）",
    "case_overdue": "联系户矛盾纠纷事件超期（事件）",
    "household_part": "联系户参与村级工作（农户积分记录）",
    "household_loss": "联系户积分扣减连带（农户积分记录）",
}
EXCHANGE_LOCK = 7318  # pg_advisory_xact_lock(EXCHANGE_LOCK, household id)
MAX_POINTS = 100_000


def today() -> date:
    """Today in China."""
    return datetime.now(CHINA).date()


def china_time(value: datetime | None) -> str | None:
    """``YYYY-MM-DD HH:mm`` in China time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def _text(
    data: dict[str, Any], name: str, zh: str, *, required: bool, max_length: int
) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadParameter(name, f"缺少{zh}（{name}）")
        return None
    if not isinstance(value, str):
        raise BadParameter(name, f"{zh}（{name}）须为文本")
    if len(value) > max_length:
        raise BadParameter(name, f"{zh}（{name}）不能超过 {max_length} 个字符")
    return value.strip()


def _int(data: dict[str, Any], name: str, zh: str, *, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadParameter(name, f"缺少{zh}（{name}）")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParameter(name, f"{zh}（{name}）须为整数")
    if not -MAX_POINTS <= value <= 2**31 - 1:
        raise BadParameter(name, f"{zh}（{name}）超出范围")
    return value


def _day(data: dict[str, Any], name: str, zh: str, default: date | None) -> date:
    value = data.get(name)
    if value is None or value == "":
        if default is None:
            raise BadParameter(name, f"缺少{zh}（{name}），格式 YYYY-MM-DD")
        return default
    if not isinstance(value, str):
        raise BadParameter(name, f"{zh}（{name}）须为日期 YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadParameter(name, f"{zh}（{name}）'{value[:20]}' 须为日期 YYYY-MM-DD") from exc


def parse_quarter(raw: str | None) -> tuple[str, date, date]:
    """``2026Q4`` → (label, first day, first day of the next quarter); None → this quarter."""
    if raw is None:
        d = today()
        year, q = d.year, (d.month - 1) // 3 + 1
    else:
        m = re.fullmatch(r"(\d{4})[Qq]([1-4])", raw.strip())
        if not m or not 1900 <= int(m.group(1)) <= 2999:
            raise BadParameter(
                "quarter", f"季度（quarter）'{raw[:20]}' 须形如 2026Q4（1900–2999 年）"
            )
        year, q = int(m.group(1)), int(m.group(2))
    start = date(year, 3 * q - 2, 1)
    end = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
    return f"{year}Q{q}", start, end


def quarter_of(day: date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def refuse_closed_quarter(session: Session, day: date) -> None:
    """An entry dated in a closed quarter (its star ratings frozen) is refused."""
    label = quarter_of(day)
    if session.scalar(text("SELECT 1 FROM star_quarter WHERE quarter = :q"), {"q": label}):
        raise Conflict(
            f"{label} 季度已考核关闭，不能再记入该季度的积分 / quarter {label} is closed",
            param="occurred_on",
        )


# ---------------------------------------------------------------- the rulebook

_RULE_COLUMNS = "id, code, version, name, kind, subject, points, valid_from, active, created_at"


def _rule_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "code": row.code,
        "version": row.version,
        "name": row.name,
        "kind": row.kind,
        "subject": row.subject,
        "points": row.points,
        "valid_from": row.valid_from.isoformat(),
        "active": row.active,
        "created_at": china_time(row.created_at),
    }


def list_rules(
    session: Session, *, subject: str | None = None, on: date | None = None
) -> list[dict[str, Any]]:
    """Every version of every rule (``current`` marks the one in force on ``on``, default today)."""
    on = on or today()
    rows = session.execute(
        text(
            f"""SELECT {_RULE_COLUMNS},
                   id = (SELECT r2.id FROM point_rule r2 WHERE r2.code = r.code AND r2.valid_from <= :on
                         ORDER BY r2.valid_from DESC, r2.version DESC LIMIT 1) AS current
                FROM point_rule r WHERE (CAST(:subject AS text) IS NULL OR subject = :subject)
                ORDER BY code, version"""
        ),
        {"on": on, "subject": subject},
    ).all()
    return [{**_rule_view(r), "current": bool(r.current)} for r in rows]


def save_rule(session: Session, data: dict[str, Any], *, user_id: int | None) -> dict[str, Any]:
    """Add a rule, or a new version of an existing code applying from ``valid_from``."""
    code = _text(data, "code", "规则编码", required=True, max_length=40)
    assert code is not None
    if not re.fullmatch(r"[A-Za-z0-9_-]+", code):
        raise BadParameter("code", "规则编码（code）只能含字母、数字、- 和 _")
    session.execute(text("SELECT pg_advisory_xact_lock(7319, hashtext(:c))"), {"c": code})
    latest = session.execute(
        text(
            f"SELECT {_RULE_COLUMNS} FROM point_rule WHERE code = :c ORDER BY version DESC LIMIT 1"
        ),
        {"c": code},
    ).first()
    name = _text(data, "name", "规则名称", required=latest is None, max_length=120) or (
        latest.name if latest else None
    )
    kind = _text(data, "kind", "积分类别", required=latest is None, max_length=10) or (
        latest.kind if latest else None
    )
    if kind not in KINDS:
        raise BadParameter("kind", f"积分类别（kind）须为 {'、'.join(KINDS)} 之一")
    subject = _text(data, "subject", "适用对象", required=False, max_length=20) or (
        latest.subject if latest else "member"
    )
    if subject not in SUBJECTS:
        raise BadParameter("subject", "适用对象（subject）须为 member（党员）或 household（农户）")
    if latest is not None and (subject != latest.subject):
        raise ValidationFailed(
            f"规则 {code} 的适用对象不能改变 / subject of a rule cannot change", param="subject"
        )
    points = _int(data, "points", "分值", required=latest is None)
    points = latest.points if points is None and latest is not None else points
    assert points is not None
    if kind == "负面分" and points >= 0 or kind != "负面分" and points <= 0:
        raise ValidationFailed(
            "分值（points）与类别不符：负面分须为负数，履职分、奖励分须为正数 / points sign does not match kind",
            param="points",
        )
    if abs(points) > 1000:
        raise BadParameter("points", "分值（points）须在 -1000 到 1000 之间")
    valid_from = _day(data, "valid_from", "生效日期", today())
    if latest is not None and valid_from < latest.valid_from:
        raise ValidationFailed(
            f"生效日期（valid_from）不能早于上一版本的 {latest.valid_from.isoformat()} / valid_from before the last version",
            param="valid_from",
        )
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise BadParameter("active", "是否启用（active）须为 true 或 false")
    row = session.execute(
        text(
            f"""INSERT INTO point_rule (code, version, name, kind, subject, points, valid_from, active, created_by)
                VALUES (:code, :version, :name, :kind, :subject, :points, :valid_from, :active, :user)
                RETURNING {_RULE_COLUMNS}"""
        ),
        {
            "code": code,
            "version": (latest.version + 1) if latest else 1,
            "name": name,
            "kind": kind,
            "subject": subject,
            "points": points,
            "valid_from": valid_from,
            "active": active,
            "user": user_id,
        },
    ).one()
    return _rule_view(row)


def rule_on(session: Session, code: str, on: date, subject: str) -> Any:
    """The version of rule ``code`` in force on ``on`` (refused if none, inactive or for the other subject)."""
    row = session.execute(
        text(
            f"""SELECT {_RULE_COLUMNS} FROM point_rule WHERE code = :c AND valid_from <= :on
                ORDER BY valid_from DESC, version DESC LIMIT 1"""
        ),
        {"c": code, "on": on},
    ).first()
    if row is None:
        raise ValidationFailed(
            f"规则 {code} 不存在或在 {on.isoformat()} 尚未生效 / no rule {code} on that day",
            param="rule_code",
        )
    if not row.active:
        raise ValidationFailed(f"规则 {code} 已停用 / rule {code} is not active", param="rule_code")
    if row.subject != subject:
        raise ValidationFailed(
            f"规则 {code} 不适用于{'党员' if subject == 'member' else '农户'} / rule {code} is for another subject",
            param="rule_code",
        )
    return row


# ---------------------------------------------------------------- members and their scope


def member_grids(session: Session, member_id: int) -> list[int]:
    """The grids a party member is assigned to (empty: not a party member)."""
    return list(
        session.scalars(
            text(
                "SELECT grid_id FROM grid_assignment WHERE worker_id = :w AND role = 'party_member' ORDER BY grid_id"
            ),
            {"w": member_id},
        )
    )


def member_visible(session: Session, p: Any, member_id: int) -> bool:
    """A member sees their own ledger, chiefs those in their grids, the centre its street's, the
    administrator every one; nobody else."""
    from app.auth.policy import grid_scope

    grids = member_grids(session, member_id)
    if not grids:
        return False
    if p.role == "admin":
        return True
    if p.role in ("party_member", "worker"):
        return p.worker_id is not None and p.worker_id == member_id
    if p.role in ("centre", *CHIEFS):
        scope = grid_scope(session, p)
        return scope is None or bool(scope & set(grids))
    return False


def entry_member(session: Session, entry_id: int) -> int | None:
    return session.scalar(
        text("SELECT member_id FROM point_entry WHERE id = :id"), {"id": entry_id}
    )


# ---------------------------------------------------------------- members' entries

_ENTRY_SQL = """SELECT e.id, e.member_id, e.occurred_on, e.note, e.case_id, e.visit_id, e.status,
       e.proposed_at, e.chief_at, e.chief_decision, e.chief_note, e.centre_at, e.centre_decision,
       e.centre_note, r.id AS rule_id, r.code AS rule_code, r.version AS rule_version,
       r.name AS rule_name, r.kind, COALESCE(e.points, r.points) AS points,
       e.source_kind, e.source_id,
       pu.username AS proposed_by, cu.username AS chief_by, su.username AS centre_by
  FROM point_entry e JOIN point_rule r ON r.id = e.rule_id
  LEFT JOIN app_user pu ON pu.id = e.proposed_by
  LEFT JOIN app_user cu ON cu.id = e.chief_by
  LEFT JOIN app_user su ON su.id = e.centre_by"""


def _entry_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "member_id": row.member_id,
        "rule": {
            "id": row.rule_id,
            "code": row.rule_code,
            "version": row.rule_version,
            "name": row.rule_name,
            "kind": row.kind,
        },
        "points": row.points,
        "occurred_on": row.occurred_on.isoformat(),
        "note": row.note,
        "case_id": row.case_id,
        "visit_id": row.visit_id,
        "source": None
        if row.source_kind is None
        else {
            "kind": row.source_kind,
            "id": row.source_id,
            "kind_zh": SOURCE_ZH.get(row.source_kind),
        },
        "status": row.status,
        "status_zh": STATUS_ZH[row.status],
        "proposed": {"by": row.proposed_by, "at": china_time(row.proposed_at)},
        "chief_review": None
        if row.chief_at is None
        else {
            "by": row.chief_by,
            "at": china_time(row.chief_at),
            "decision": row.chief_decision,
            "note": row.chief_note,
        },
        "centre_review": None
        if row.centre_at is None
        else {
            "by": row.centre_by,
            "at": china_time(row.centre_at),
            "decision": row.centre_decision,
            "note": row.centre_note,
        },
    }


def get_entry(session: Session, entry_id: int) -> dict[str, Any]:
    row = session.execute(text(_ENTRY_SQL + " WHERE e.id = :id"), {"id": entry_id}).first()
    if row is None:
        raise NotFound(f"积分记录 {entry_id} 不存在 / point entry {entry_id} not found")
    return _entry_view(row)


def propose_entry(session: Session, p: Any, data: dict[str, Any]) -> dict[str, Any]:
    """A party member proposes an entry for themself, or a chief for a member of their grids."""
    from app.auth.policy import Forbidden

    member_id = _int(data, "member_id", "党员（member_id）")
    assert member_id is not None
    if member_id <= 0 or not member_visible(session, p, member_id):
        raise NotFound(f"党员 {member_id} 不存在或不在您的范围内 / member {member_id} not found")
    if p.role == "party_member" and member_id != p.worker_id:
        raise Forbidden("党员只能为本人申报积分 / a member proposes entries for themself only")
    code = _text(data, "rule_code", "积分规则编码", required=True, max_length=40)
    assert code is not None
    occurred_on = _day(data, "occurred_on", "发生日期", today())
    if occurred_on > today():
        raise ValidationFailed(
            "发生日期（occurred_on）不能晚于今天 / occurred_on is in the future",
            param="occurred_on",
        )
    note = _text(data, "note", "说明", required=False, max_length=2000)
    refuse_closed_quarter(session, occurred_on)
    rule = rule_on(session, code, occurred_on, "member")
    case_id = _int(data, "case_id", "关联事件", required=False)
    visit_id = _int(data, "visit_id", "关联走访", required=False)
    if (
        case_id is not None
        and session.scalar(text('SELECT 1 FROM "case" WHERE id = :id'), {"id": case_id}) is None
    ):
        raise ValidationFailed(f"关联事件 {case_id} 不存在 / case not found", param="case_id")
    if (
        visit_id is not None
        and session.scalar(text("SELECT 1 FROM visit WHERE id = :id"), {"id": visit_id}) is None
    ):
        raise ValidationFailed(f"关联走访 {visit_id} 不存在 / visit not found", param="visit_id")
    entry_id = session.scalar(
        text(
            """INSERT INTO point_entry (member_id, rule_id, occurred_on, note, case_id, visit_id, proposed_by)
               VALUES (:m, :r, :d, :note, :c, :v, :u) RETURNING id"""
        ),
        {
            "m": member_id,
            "r": rule.id,
            "d": occurred_on,
            "note": note,
            "c": case_id,
            "v": visit_id,
            "u": p.user_id,
        },
    )
    return get_entry(session, entry_id)


def review_entry(session: Session, p: Any, entry_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """One step of the review: a chief first, then the centre (or the administrator)."""
    from app.auth.policy import Forbidden

    decision = data.get("decision")
    if decision not in ("approve", "reject"):
        raise BadParameter("decision", "审核结论（decision）须为 approve（通过）或 reject（驳回）")
    note = _text(data, "note", "审核意见", required=decision == "reject", max_length=2000)
    status = session.scalar(
        text("SELECT status FROM point_entry WHERE id = :id FOR UPDATE"), {"id": entry_id}
    )
    if status is None:
        raise NotFound(f"积分记录 {entry_id} 不存在 / point entry {entry_id} not found")
    if status in ("approved", "rejected"):
        raise Conflict(
            f"积分记录 {entry_id} 已审核完毕（{STATUS_ZH[status]}） / the review is over",
            status=status,
        )
    if status == "proposed":
        if p.role not in CHIEFS:
            if p.role in ("centre", "admin"):
                raise Conflict("须先由网格长（支部）审核 / a chief reviews first", status=status)
            raise Forbidden("只有网格长可以进行第一步审核 / only a chief reviews first")
        step, nxt = "chief", "chief_approved"
    else:
        if p.role not in ("centre", "admin"):
            if p.role in CHIEFS:
                raise Conflict(
                    "网格长已审核，待社区（中心）审核 / waits for the centre", status=status
                )
            raise Forbidden(
                "只有社区（中心）或管理员可以进行第二步审核 / only the centre reviews second"
            )
        step, nxt = "centre", "approved"
    new_status = nxt if decision == "approve" else "rejected"
    session.execute(
        text(
            f"""UPDATE point_entry SET status = :s, {step}_by = :u, {step}_at = now(),
                   {step}_decision = :d, {step}_note = :n WHERE id = :id"""
        ),
        {"s": new_status, "u": p.user_id, "d": decision, "n": note, "id": entry_id},
    )
    return get_entry(session, entry_id)


def pending_entries(session: Session, p: Any) -> list[dict[str, Any]]:
    """Entries waiting for the caller's step: a chief's (proposed) of members in the chief's
    grids, the centre's or the administrator's (chief-approved) of members in theirs."""
    from app.auth.policy import grid_scope

    if p.role in CHIEFS:
        status = "proposed"
    elif p.role in ("centre", "admin"):
        status = "chief_approved"
    else:
        return []
    scope = grid_scope(session, p)
    rows = session.execute(
        text(
            _ENTRY_SQL
            + """ WHERE e.status = :s AND EXISTS (SELECT 1 FROM grid_assignment a
                   WHERE a.worker_id = e.member_id AND a.role = 'party_member'
                     AND (:all OR a.grid_id = ANY(CAST(:scope AS integer[]))))
                ORDER BY e.proposed_at, e.id LIMIT 500"""
        ),
        {"s": status, "all": scope is None, "scope": sorted(scope or ())},
    ).all()
    names = dict(
        session.execute(
            text("SELECT id, name FROM worker WHERE id = ANY(CAST(:ids AS integer[]))"),
            {"ids": sorted({r.member_id for r in rows})},
        ).all()
    )
    return [{**_entry_view(r), "member_name": names.get(r.member_id)} for r in rows]


def member_ledger(session: Session, member_id: int) -> dict[str, Any]:
    """A member's entries, newest first, and the total of the approved ones."""
    worker = session.execute(
        text("SELECT id, name FROM worker WHERE id = :id"), {"id": member_id}
    ).first()
    if worker is None:
        raise NotFound(f"党员 {member_id} 不存在 / member {member_id} not found")
    rows = session.execute(
        text(_ENTRY_SQL + " WHERE e.member_id = :m ORDER BY e.occurred_on DESC, e.id DESC"),
        {"m": member_id},
    ).all()
    entries = [_entry_view(r) for r in rows]
    by_kind = {k: 0 for k in KINDS}
    for r in rows:
        if r.status == "approved":
            by_kind[r.kind] += r.points
    return {
        "member": {"id": worker.id, "name": worker.name, "grids": member_grids(session, member_id)},
        "total": sum(by_kind.values()),
        "by_kind": by_kind,
        "pending": sum(1 for r in rows if r.status in ("proposed", "chief_approved")),
        "entries": entries,
    }


# ---------------------------------------------------------------- households


def _household_exists(session: Session, household_id: int) -> None:
    if session.scalar(text("SELECT 1 FROM household WHERE id = :id"), {"id": household_id}) is None:
        raise NotFound(f"住户 {household_id} 不存在 / household {household_id} not found")


def household_balance(session: Session, household_id: int) -> int:
    """Points earned by the household minus points exchanged, from the rows themselves."""
    return int(
        session.scalar(
            text(
                """SELECT COALESCE((SELECT SUM(r.points) FROM household_point_entry e
                                    JOIN point_rule r ON r.id = e.rule_id WHERE e.household_id = :h), 0)
                        - COALESCE((SELECT SUM(points) FROM point_exchange WHERE household_id = :h), 0)"""
            ),
            {"h": household_id},
        )
    )


def add_household_entry(
    session: Session, household_id: int, data: dict[str, Any], *, user_id: int | None
) -> dict[str, Any]:
    _household_exists(session, household_id)
    code = _text(data, "rule_code", "积分规则编码", required=True, max_length=40)
    assert code is not None
    occurred_on = _day(data, "occurred_on", "发生日期", today())
    if occurred_on > today():
        raise ValidationFailed(
            "发生日期（occurred_on）不能晚于今天 / occurred_on is in the future",
            param="occurred_on",
        )
    note = _text(data, "note", "说明", required=False, max_length=2000)
    refuse_closed_quarter(session, occurred_on)
    rule = rule_on(session, code, occurred_on, "household")
    entry_id = session.scalar(
        text(
            """INSERT INTO household_point_entry (household_id, rule_id, occurred_on, note, created_by)
               VALUES (:h, :r, :d, :n, :u) RETURNING id"""
        ),
        {"h": household_id, "r": rule.id, "d": occurred_on, "n": note, "u": user_id},
    )
    return {
        "id": entry_id,
        "household_id": household_id,
        "rule": {
            "id": rule.id,
            "code": rule.code,
            "version": rule.version,
            "name": rule.name,
            "kind": rule.kind,
        },
        "points": rule.points,
        "occurred_on": occurred_on.isoformat(),
        "note": note,
        "balance": household_balance(session, household_id),
    }


def exchange(
    session: Session, household_id: int, data: dict[str, Any], *, user_id: int | None
) -> dict[str, Any]:
    """Spend points at the 积分超市; never below a zero balance (serialised per household)."""
    points = _int(data, "points", "兑换积分")
    assert points is not None
    if points <= 0 or points > MAX_POINTS:
        raise BadParameter("points", f"兑换积分（points）须为 1 到 {MAX_POINTS} 的整数")
    item = _text(data, "item", "兑换物品或服务", required=True, max_length=120)
    _household_exists(session, household_id)
    session.execute(
        text("SELECT pg_advisory_xact_lock(:k, :h)"), {"k": EXCHANGE_LOCK, "h": household_id}
    )
    balance = household_balance(session, household_id)
    if points > balance:
        raise Conflict(
            f"积分余额不足：余额 {balance} 分，兑换需 {points} 分 / balance {balance} is less than {points}",
            balance=balance,
        )
    row = session.execute(
        text(
            """INSERT INTO point_exchange (household_id, points, item, created_by)
               VALUES (:h, :p, :i, :u) RETURNING id, created_at"""
        ),
        {"h": household_id, "p": points, "i": item, "u": user_id},
    ).one()
    return {
        "id": row.id,
        "household_id": household_id,
        "points": points,
        "item": item,
        "created_at": china_time(row.created_at),
        "balance": balance - points,
    }


def household_ledger(session: Session, household_id: int) -> dict[str, Any]:
    _household_exists(session, household_id)
    entries = session.execute(
        text(
            """SELECT e.id, e.occurred_on, e.note, e.created_at, r.code, r.version, r.name, r.kind, r.points,
                      u.username
                 FROM household_point_entry e JOIN point_rule r ON r.id = e.rule_id
                 LEFT JOIN app_user u ON u.id = e.created_by
                WHERE e.household_id = :h ORDER BY e.occurred_on DESC, e.id DESC"""
        ),
        {"h": household_id},
    ).all()
    exchanges = session.execute(
        text(
            """SELECT x.id, x.points, x.item, x.created_at, u.username FROM point_exchange x
                 LEFT JOIN app_user u ON u.id = x.created_by WHERE x.household_id = :h ORDER BY x.id DESC"""
        ),
        {"h": household_id},
    ).all()
    earned = sum(r.points for r in entries)
    spent = sum(x.points for x in exchanges)
    return {
        "household_id": household_id,
        "earned": earned,
        "spent": spent,
        "balance": household_balance(session, household_id),
        "entries": [
            {
                "id": r.id,
                "rule": {"code": r.code, "version": r.version, "name": r.name, "kind": r.kind},
                "points": r.points,
                "occurred_on": r.occurred_on.isoformat(),
                "note": r.note,
                "by": r.username,
                "at": china_time(r.created_at),
            }
            for r in entries
        ],
        "exchanges": [
            {
                "id": x.id,
                "points": x.points,
                "item": x.item,
                "by": x.username,
                "at": china_time(x.created_at),
            }
            for x in exchanges
        ],
    }


# ---------------------------------------------------------------- the ranking

GROUPS = ("member", "household", "grid")
SORT_MEMORY = "64MB"  # a quarter's ranking of a city sorts and hashes in memory, not on disk


def sort_memory(session: Session) -> None:
    """Let this transaction's rankings sort in memory (``work_mem``, reset at its end)."""
    session.execute(text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))


# Who reads party members' names in full in the ranking: the branch (the chiefs), the centre, the
# administrator and the members themselves (the branch's points are public within it). A grid
# worker sees surnames only.
MEMBER_NAME_ROLES = ("admin", "centre", "grid_chief", "micro_chief", "party_member")


def sees_member_names(role: str) -> bool:
    return role in MEMBER_NAME_ROLES


def ranking(
    session: Session,
    scope: frozenset[int] | None,
    *,
    quarter: str | None,
    group: str,
    limit: int = 100,
    mask_names: bool = False,
) -> dict[str, Any]:
    """Totals of a quarter per member, household or grid within ``scope`` (None: every grid);
    ``mask_names`` keeps members' surnames only (see ``sees_member_names``)."""
    if group not in GROUPS:
        raise BadParameter(
            "group", "分组（group）须为 member（党员）、household（农户）或 grid（微网格）"
        )
    label, start, end = parse_quarter(quarter)
    params: dict[str, Any] = {
        "start": start,
        "end": end,
        "limit": limit,
        "all": scope is None,
        "scope": sorted(scope or ()),
    }
    if group == "member":
        sql = """WITH m AS (SELECT DISTINCT a.worker_id FROM grid_assignment a
                             WHERE a.role = 'party_member' AND (:all OR a.grid_id = ANY(CAST(:scope AS integer[])))),
                      t AS (SELECT m.worker_id, COALESCE(SUM(COALESCE(e.points, r.points)), 0)::int AS total
                              FROM m LEFT JOIN point_entry e ON e.member_id = m.worker_id AND e.status = 'approved'
                                     AND e.occurred_on >= :start AND e.occurred_on < :end
                              LEFT JOIN point_rule r ON r.id = e.rule_id GROUP BY m.worker_id)
                 SELECT t.worker_id AS id, w.name, t.total, RANK() OVER (ORDER BY t.total DESC)::int AS rank,
                        COUNT(*) OVER ()::int AS count
                   FROM t JOIN worker w ON w.id = t.worker_id ORDER BY t.total DESC, t.worker_id LIMIT :limit"""
    elif group == "household":
        # the quarter's entries summed per household first, then every household joined to them
        sql = """WITH p AS (SELECT e.household_id, SUM(r.points)::int AS pts FROM household_point_entry e
                              JOIN point_rule r ON r.id = e.rule_id
                             WHERE e.occurred_on >= :start AND e.occurred_on < :end GROUP BY e.household_id),
                      t AS (SELECT h.id, h.grid_id, COALESCE(p.pts, 0) AS total FROM household h
                              LEFT JOIN p ON p.household_id = h.id WHERE :all OR h.grid_id = ANY(CAST(:scope AS integer[]))),
                      k AS (SELECT t.id, t.grid_id, t.total, RANK() OVER (ORDER BY t.total DESC)::int AS rank,
                                   COUNT(*) OVER ()::int AS count
                              FROM t ORDER BY t.total DESC, t.id LIMIT :limit)
                 SELECT k.id, k.grid_id, g.code AS grid_code, g.name AS grid_name, k.total, k.rank, k.count
                   FROM k JOIN grid g ON g.id = k.grid_id ORDER BY k.total DESC, k.id"""
    else:
        sql = """WITH p AS (SELECT e.household_id, SUM(r.points) AS pts FROM household_point_entry e
                              JOIN point_rule r ON r.id = e.rule_id
                             WHERE e.occurred_on >= :start AND e.occurred_on < :end GROUP BY e.household_id),
                      t AS (SELECT h.grid_id, COUNT(*)::int AS households, COALESCE(SUM(p.pts), 0)::int AS total
                              FROM household h LEFT JOIN p ON p.household_id = h.id
                             WHERE :all OR h.grid_id = ANY(CAST(:scope AS integer[])) GROUP BY h.grid_id)
                 SELECT t.grid_id AS id, g.code, g.name, t.households, t.total,
                        ROUND(t.total::numeric / t.households, 2)::float AS average,
                        RANK() OVER (ORDER BY t.total DESC)::int AS rank, COUNT(*) OVER ()::int AS count
                   FROM t JOIN grid g ON g.id = t.grid_id ORDER BY t.total DESC, t.grid_id LIMIT :limit"""
    sort_memory(session)
    result = session.execute(text(sql), params)
    keys = list(result.keys())
    items = [dict(zip(keys, r, strict=True)) for r in result]
    count = items[0]["count"] if items else 0
    for item in items:
        del item["count"]
    if group == "member" and mask_names:
        for item in items:
            item["name"] = mask_name(item["name"])
    return {
        "names_masked": group == "member" and mask_names,
        "quarter": label,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group": group,
        "count": count,
        "items": items,
    }

"""Points from the platform's own records, the points settings, and the public ranking page.

Automatic entries (``sync``), each naming the record that made it (``source_kind`` +
``source_id``), made once: a unique index over (member, kind, record) turns a re-run into
nothing. They count at once (status ``approved``: the record is the evidence), under the version
of their rule in force on their day:

- ``case_solved`` — a case a party member reported (the ``report`` event's worker) that is
  ``closed`` and not marked unsolved: rule ``auto_case_rule`` on the day it was closed.
- ``case_overdue`` — a case of a ``dispute_categories`` category reported at a household (through a
  visit) whose linked member is a party member, not cancelled, whose deadline passed before it
  was resolved (or is still unresolved): rule ``overdue_rule`` on the day of the deadline.
- ``household_part`` — a linked household's entry under one of ``participation_rules`` (the
  household took part): the member gets ``participation_member_rule`` on the same day.
- ``household_loss`` — a linked household's entry with negative points: the member loses
  ``link_loss_share`` of them (rounded, rule ``link_loss_rule``; nothing when it rounds to 0).

Settings are rows of ``point_setting`` over ``DEFAULTS``; every change is audited with the request.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter, NotFound
from app.models import PointSetting
from app.services import grid_tree, settings_store
from app.services.points import CHINA, parse_quarter

DEFAULTS: dict[str, Any] = {
    "auto_case_rule": "DY-ZD-01",
    "dispute_categories": ["dispute"],
    "overdue_rule": "DY-FM-02",
    "participation_rules": ["HH-JL-01"],
    "participation_member_rule": "DY-LZ-01",
    "link_loss_share": 0.5,
    "link_loss_rule": "DY-FM-03",
    "public_fields": ["surname", "house_number"],
    "star_weights": {"cases": 30, "visits": 25, "member_points": 25, "events": 20},
    "star_thresholds": [60, 70, 80, 90, 95],
    "member_points_target": 10,
    "events_target": 3,
    "allowance_per_star": {
        "grid_chief": 100,
        "micro_chief": 100,
        "worker_full": 80,
        "worker_part": 40,
    },
    "service_point_thresholds": [60, 70, 80, 90, 95],
}
PUBLIC_FIELDS = {"surname": "户主姓氏", "house_number": "门牌号", "grid": "所在网格"}
CRITERIA = {
    "cases": "事件办结与满意度",
    "visits": "走访按时率",
    "member_points": "党员积分",
    "events": "活动开展",
}
ALLOWANCE_ROLES = ("grid_chief", "micro_chief", "worker_full", "worker_part")


def get_settings(session: Session) -> dict[str, Any]:
    return settings_store.read(session, PointSetting, DEFAULTS)


def _code(value: Any, key: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 40:
        raise BadParameter(key, f"设置 {key} 须为 1–40 个字符的规则编码")
    return value.strip()


def _codes(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or len(value) > 50:
        raise BadParameter(key, f"设置 {key} 须为编码列表（至多 50 项）")
    return [_code(v, key) for v in value]


def _number(value: Any, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadParameter(key, f"设置 {key} 须为 {low:g} 到 {high:g} 之间的数")
    return value


def _thresholds(value: Any, key: str) -> list[float]:
    if not isinstance(value, list) or len(value) != 5:
        raise BadParameter(key, f"设置 {key} 须为 5 个递增的分数线（一星到五星）")
    out = [_number(v, key, 0, 100) for v in value]
    if out != sorted(out):
        raise BadParameter(key, f"设置 {key} 的分数线须递增")
    return out


def _weights(value: Any, key: str, names: tuple[str, ...] | dict[str, str], high: float) -> dict:
    if not isinstance(value, dict) or set(value) - set(names) or not value:
        raise BadParameter(key, f"设置 {key} 的项须为 {'、'.join(names)} 之一")
    return {k: _number(v, key, 0, high) for k, v in value.items()}


def _check(key: str, value: Any) -> Any:
    if key in ("auto_case_rule", "overdue_rule", "participation_member_rule", "link_loss_rule"):
        return _code(value, key)
    if key in ("dispute_categories", "participation_rules"):
        return _codes(value, key)
    if key == "link_loss_share":
        return _number(value, key, 0, 1)
    if key in ("member_points_target", "events_target"):
        return _number(value, key, 1, 100_000)
    if key == "public_fields":
        if not isinstance(value, list) or set(value) - set(PUBLIC_FIELDS):
            raise BadParameter(key, "公开项（public_fields）只能是 surname、house_number、grid")
        return list(dict.fromkeys(value))
    if key in ("star_thresholds", "service_point_thresholds"):
        return _thresholds(value, key)
    if key == "star_weights":
        weights = _weights(value, key, CRITERIA, 100)
        if sum(weights.values()) <= 0:
            raise BadParameter(key, "评星权重（star_weights）之和须大于 0")
        return weights
    if key == "allowance_per_star":
        return _weights(value, key, ALLOWANCE_ROLES, 100_000)
    raise BadParameter(key, f"未知的设置项 {key[:40]}")


def update_settings(session: Session, changes: dict[str, Any], *, user_id: int | None) -> dict:
    if not changes:
        raise BadParameter("body", "请求体须包含至少一项设置")
    checked = {key: _check(key, value) for key, value in changes.items()}
    settings_store.write(session, PointSetting, checked, updated_by=user_id)
    return get_settings(session)


# ---------------------------------------------------------------- automatic entries

_RULE_AT = """JOIN LATERAL (SELECT id, active, subject FROM point_rule WHERE code = :rule AND valid_from <= {day}
                            ORDER BY valid_from DESC, version DESC LIMIT 1) r
               ON r.active AND r.subject = 'member'"""
_MEMBER = (
    "EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = {w} AND a.role = 'party_member')"
)
_CONFLICT = (
    "ON CONFLICT (member_id, source_kind, source_id) WHERE source_kind IS NOT NULL DO NOTHING"
)
_CHINA_DAY = "(({col}) AT TIME ZONE 'Asia/Shanghai')::date"


def case_closed(session: Session, case_id: int) -> int:
    """The moment a case closes: its reporter's entry for a solved case, if the reporter is a
    party member and the rulebook has the item (made once; `sync` finds it already made)."""
    return _case_solved(session, get_settings(session), case_id)


def _case_solved(session: Session, settings: dict[str, Any], case_id: int | None) -> int:
    closed_day = _CHINA_DAY.format(col="c.closed_at")
    return _insert(
        session,
        f"""INSERT INTO point_entry (member_id, rule_id, occurred_on, note, case_id, status,
                                    source_kind, source_id)
            SELECT ev.actor_worker_id, r.id, {closed_day}, '自动：上报的事件 ' || c.code || ' 已办结',
                   c.id, 'approved', 'case_solved', c.id
              FROM "case" c
              JOIN LATERAL (SELECT actor_worker_id FROM case_event
                             WHERE case_id = c.id AND action = 'report' ORDER BY id LIMIT 1) ev
                ON ev.actor_worker_id IS NOT NULL
              {_RULE_AT.format(day=closed_day)}
             WHERE c.status = 'closed' AND c.solved IS NOT FALSE AND c.closed_at IS NOT NULL
               AND {_MEMBER.format(w="ev.actor_worker_id")}
               AND (CAST(:case AS bigint) IS NULL OR c.id = :case)
            {_CONFLICT} RETURNING 1""",
        {"rule": settings["auto_case_rule"], "case": case_id},
    )


def sync(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """Make the automatic entries not made yet; answer how many of each kind were made."""
    settings = get_settings(session)
    now = now or datetime.now(UTC)
    made: dict[str, int] = {}
    made["case_solved"] = _case_solved(session, settings, None)
    deadline_day = _CHINA_DAY.format(col="c.deadline")
    made["case_overdue"] = _insert(
        session,
        f"""INSERT INTO point_entry (member_id, rule_id, occurred_on, note, case_id, status,
                                    source_kind, source_id)
            SELECT DISTINCT ON (h.linked_member_id, c.id) h.linked_member_id, r.id, {deadline_day},
                   '自动：联系户的矛盾纠纷事件 ' || c.code || ' 超期未化解', c.id, 'approved',
                   'case_overdue', c.id
              FROM "case" c JOIN visit v ON v.case_id = c.id
              JOIN household h ON h.id = v.household_id AND h.linked_member_id IS NOT NULL
              {_RULE_AT.format(day=deadline_day)}
             WHERE c.category = ANY(:cats) AND c.status <> 'cancelled' AND c.deadline IS NOT NULL
               AND c.deadline < LEAST(COALESCE(c.resolved_at, c.closed_at, :now), :now)
               AND {_MEMBER.format(w="h.linked_member_id")}
            {_CONFLICT} RETURNING 1""",
        {"rule": settings["overdue_rule"], "cats": settings["dispute_categories"], "now": now},
    )
    made["household_part"] = _insert(
        session,
        f"""INSERT INTO point_entry (member_id, rule_id, occurred_on, note, status, source_kind, source_id)
            SELECT h.linked_member_id, r.id, e.occurred_on,
                   '自动：联系户参与「' || hr.name || '」（农户积分记录 ' || e.id || '）', 'approved',
                   'household_part', e.id
              FROM household_point_entry e JOIN point_rule hr ON hr.id = e.rule_id
              JOIN household h ON h.id = e.household_id AND h.linked_member_id IS NOT NULL
              {_RULE_AT.format(day="e.occurred_on")}
             WHERE hr.code = ANY(:codes) AND {_MEMBER.format(w="h.linked_member_id")}
            {_CONFLICT} RETURNING 1""",
        {"rule": settings["participation_member_rule"], "codes": settings["participation_rules"]},
    )
    made["household_loss"] = _insert(
        session,
        f"""INSERT INTO point_entry (member_id, rule_id, occurred_on, note, status, source_kind,
                                    source_id, points)
            SELECT h.linked_member_id, r.id, e.occurred_on,
                   '自动：联系户被扣「' || hr.name || '」' || hr.points || ' 分，按比例连带（农户积分记录 '
                   || e.id || '）', 'approved', 'household_loss', e.id,
                   ROUND(CAST(:share AS numeric) * hr.points)::int
              FROM household_point_entry e JOIN point_rule hr ON hr.id = e.rule_id
              JOIN household h ON h.id = e.household_id AND h.linked_member_id IS NOT NULL
              {_RULE_AT.format(day="e.occurred_on")}
             WHERE hr.points < 0 AND ROUND(CAST(:share AS numeric) * hr.points) <> 0
               AND {_MEMBER.format(w="h.linked_member_id")}
            {_CONFLICT} RETURNING 1""",
        {"rule": settings["link_loss_rule"], "share": settings["link_loss_share"]},
    )
    return made


def _insert(session: Session, sql: str, params: dict[str, Any]) -> int:
    return len(session.execute(text(sql), params).all())


# ---------------------------------------------------------------- the public page


def _community(session: Session, code: str) -> Any:
    row = session.execute(
        text("SELECT id, code, name FROM grid WHERE code = :c AND level = 2 AND valid_to IS NULL"),
        {"c": code[:40]},
    ).first()
    if row is None:
        raise NotFound(f"未找到社区/村 {code[:40]} / no village with this code")
    return row


def house_number(building: str | None, unit: str | None, room: str | None) -> str:
    parts = [p.strip() for p in (building, unit, room) if p and p.strip()]
    return "-".join(parts)


def public_ranking(
    session: Session, code: str, quarter: str | None, *, limit: int = 100
) -> dict[str, Any]:
    """A village's quarter: households and micro-grids ranked side by side, showing only what the
    village publishes (``public_fields``) — never a full name, phone, address or tag."""
    village = _community(session, code)
    label, start, end = parse_quarter(quarter)
    fields = get_settings(session)["public_fields"]
    ids = sorted(grid_tree.subtree_ids(session, [village.id], current=True))
    rows = session.execute(
        text(
            """WITH p AS (SELECT e.household_id, SUM(r.points)::int AS pts FROM household_point_entry e
                            JOIN point_rule r ON r.id = e.rule_id
                            JOIN household h ON h.id = e.household_id AND h.grid_id = ANY(CAST(:ids AS integer[]))
                           WHERE e.occurred_on >= :start AND e.occurred_on < :end GROUP BY e.household_id)
               SELECT h.id, h.head_name, h.building, h.unit, h.room, g.name AS grid_name, p.pts AS total,
                      RANK() OVER (ORDER BY p.pts DESC)::int AS rank
                 FROM p JOIN household h ON h.id = p.household_id JOIN grid g ON g.id = h.grid_id
                ORDER BY p.pts DESC, h.id LIMIT :limit"""
        ),
        {"ids": ids, "start": start, "end": end, "limit": limit},
    ).all()
    households = []
    for r in rows:
        item: dict[str, Any] = {"rank": r.rank, "total": r.total}
        if "surname" in fields:
            item["surname"] = (r.head_name or "").strip()[:1] or "—"
        if "house_number" in fields:
            item["house_number"] = house_number(r.building, r.unit, r.room) or "—"
        if "grid" in fields:
            item["grid"] = r.grid_name
        households.append(item)
    groups = session.execute(
        text(
            """WITH p AS (SELECT e.household_id, SUM(r.points) AS pts FROM household_point_entry e
                            JOIN point_rule r ON r.id = e.rule_id
                           WHERE e.occurred_on >= :start AND e.occurred_on < :end GROUP BY e.household_id),
                    t AS (SELECT CASE WHEN g.level = 5 THEN g.parent_id ELSE g.id END AS gid,
                                 COUNT(*)::int AS households, COALESCE(SUM(p.pts), 0)::int AS total
                            FROM household h JOIN grid g ON g.id = h.grid_id
                            LEFT JOIN p ON p.household_id = h.id
                           WHERE h.grid_id = ANY(CAST(:ids AS integer[])) GROUP BY 1)
               SELECT g.name, t.households, t.total,
                      ROUND(t.total::numeric / t.households, 2)::float AS average,
                      RANK() OVER (ORDER BY t.total DESC)::int AS rank
                 FROM t JOIN grid g ON g.id = t.gid ORDER BY t.total DESC, g.code LIMIT :limit"""
        ),
        {"ids": ids, "start": start, "end": end, "limit": limit},
    ).mappings()
    return {
        "village": {"code": village.code, "name": village.name},
        "quarter": label,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "fields": [f for f in PUBLIC_FIELDS if f in fields],
        "field_names": PUBLIC_FIELDS,
        "households": households,
        "groups": [dict(g) for g in groups],
        "printed": datetime.now(CHINA).strftime("%Y-%m-%d %H:%M"),
    }


def quarter_bounds_utc(quarter: str | None) -> tuple[str, datetime, datetime, date, date]:
    """The quarter's label, its start and end as instants (China midnights), and its days."""
    label, start, end = parse_quarter(quarter)
    t0 = datetime(start.year, start.month, start.day, tzinfo=CHINA)
    t1 = datetime(end.year, end.month, end.day, tzinfo=CHINA)
    return label, t0, t1, start, end

"""A few months of case history for the sample street and village, so that the desk, the KPIs
and the overview show real figures on a first ``make run``.

Every case goes through the case services (``cases.create_case``, ``cases.perform``,
``cases.camera_event``) with backdated times, so that codes, deadlines (working hours of the
calendar), timelines and KPIs are the ones the platform itself computes. The run is
deterministic for a seed and a ``now``: the same choices, the same times relative to ``now``.

The history holds cases in every state and category, from every source (residents, patrols,
cameras, the hotline, superiors), some overdue, escalated to a chief or a department,
transferred to a neighbouring grid, returned, reopened, cancelled, merged into another, rated
(solved and not solved) and closed when nobody rated them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import AppError
from app.services import cases as svc

SEED = 20261204
DAYS = 90
CASES = 260
TZ = ZoneInfo("Asia/Shanghai")

SOURCES = (("resident", 34), ("patrol", 30), ("camera", 16), ("hotline", 12), ("superior", 8))
# What becomes of a case, with weights; the first cases take each in turn so all occur.
OUTCOMES = (
    ("rated", 38),
    ("timeout", 8),
    ("verified", 5),
    ("resolved", 6),
    ("accepted", 8),
    ("dispatched", 8),
    ("returned", 4),
    ("cancelled", 5),
    ("merged", 5),
    ("escalated_chief", 5),
    ("escalated_department", 4),
    ("transferred", 4),
    ("reopened", 4),
)
DESCRIPTIONS = {
    "fire_hazard": ["楼道堆放杂物堵塞消防通道", "电动车在楼道内充电", "消防栓被遮挡"],
    "dispute": ["邻里因漏水发生纠纷", "楼上楼下噪声引发争吵", "停车位归属争议"],
    "road_occupation": ["路口流动摊贩占道经营", "商铺出店经营占用人行道", "早市摊点占道"],
    "illegal_parking": ["非机动车乱停放堵塞通道", "机动车占用消防通道停放", "共享单车堆积"],
    "garbage": ["垃圾桶满溢未及时清运", "建筑垃圾堆放路边", "绿化带内垃圾堆积"],
    "illegal_building": ["楼顶私自搭建彩钢棚", "院内违规加盖房屋", "阳台外扩搭建"],
    "streetlight": ["路灯不亮", "路灯白天常亮", "灯杆倾斜"],
    "facility": ["健身器材损坏", "井盖缺失", "小区围栏破损"],
    "property": ["电梯故障停运", "楼道照明损坏", "小区门禁失灵"],
    "noise": ["夜间施工噪声扰民", "广场舞音响声音过大", "商铺音箱外放"],
    "oil_smoke": ["餐馆油烟直排", "污水外溢到路面", "烧烤油烟扰民"],
    "food_safety": ["无证流动食品摊贩", "商店出售过期食品", "餐馆卫生条件差"],
    "other": ["流浪犬出没", "树木倒伏", "公告栏破损"],
}
RATING_NOTES = ("处理及时，很满意", "问题已解决", "态度好", "处理太慢", "问题没有彻底解决")


class _Clock:
    """Times of one case's steps: each a while after the last, never after ``now``."""

    def __init__(self, start: datetime, now: datetime) -> None:
        self.t = start
        self.now = now

    def after(self, hours: float) -> datetime | None:
        t = self.t + timedelta(hours=hours)
        if t >= self.now - timedelta(minutes=1):
            return None
        self.t = t
        return t


def _working_time(rng: random.Random, day: datetime) -> datetime:
    local = day.astimezone(TZ).replace(hour=8, minute=30, second=0, microsecond=0)
    return (local + timedelta(minutes=rng.randrange(0, 9 * 60))).astimezone(UTC)


def _handler(view: dict[str, Any]) -> svc.Actor | None:
    if view.get("escalation_level") == 2 and view.get("department"):
        return svc.Actor("department", department_id=view["department"]["id"])
    if view.get("assignee"):
        return svc.Actor("worker", worker_id=view["assignee"]["id"])
    return None


def _deadline(view: dict[str, Any]) -> datetime | None:
    raw = view.get("deadline")
    return datetime.fromisoformat(raw) if raw else None


def generate(
    session: Session, *, now: datetime | None = None, seed: int = SEED, count: int = CASES
) -> dict[str, int]:
    """Write ``count`` cases of the last ``DAYS`` days; return the cases per state."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    centre = svc.Actor("centre", name="指挥中心值班员")
    points = session.execute(
        text("SELECT ST_X(geom) AS x, ST_Y(geom) AS y, address FROM household ORDER BY id")
    ).all()
    cameras = (
        session.execute(text("SELECT code FROM camera WHERE analytics ORDER BY code"))
        .scalars()
        .all()
    )
    patrols = (
        session.execute(
            text(
                """SELECT DISTINCT worker_id FROM grid_assignment
               WHERE role IN ('worker_full', 'worker_part') ORDER BY worker_id"""
            )
        )
        .scalars()
        .all()
    )
    categories = [c for c in svc.categories(session)]
    camera_types = [(c["code"], t) for c in categories for t in c.get("camera_event_types") or []]
    if not points:
        return {}
    starts = sorted(
        _working_time(rng, now - timedelta(days=rng.uniform(0, DAYS))) for _ in range(count)
    )
    # A few reported today, in the morning's working hours before now.
    today = now.astimezone(TZ).replace(hour=8, minute=40, second=0, microsecond=0).astimezone(UTC)
    for k in range(6):
        t = today + timedelta(minutes=37 * k)
        if t < now - timedelta(minutes=5):
            starts[-1 - k] = t
    starts.sort()
    open_views: list[dict[str, Any]] = []
    for i, t0 in enumerate(starts):
        source = (
            SOURCES[i % len(SOURCES)][0]
            if i < len(SOURCES)
            else rng.choices([s for s, _ in SOURCES], [w for _, w in SOURCES])[0]
        )
        outcome = (
            OUTCOMES[i % len(OUTCOMES)][0]
            if i < 2 * len(OUTCOMES)
            else rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        )
        category = categories[i % len(categories)]["code"] if i < len(categories) else None
        view = _report(
            session, rng, i, t0, source, category, points, cameras, camera_types, patrols
        )
        if view is None:
            continue
        final = _play(session, rng, view, outcome, _Clock(t0, now), centre, open_views)
        if final is not None and final["status"] in ("dispatched", "accepted"):
            open_views.append(final)
    counts = session.execute(text('SELECT status, count(*) FROM "case" GROUP BY status')).all()
    return {s: int(n) for s, n in counts}


def _report(
    session: Session,
    rng: random.Random,
    i: int,
    t0: datetime,
    source: str,
    category: str | None,
    points: list[Any],
    cameras: list[str],
    camera_types: list[tuple[str, str]],
    patrols: list[int],
) -> dict[str, Any] | None:
    if source == "camera" and cameras and camera_types:
        code, event_type = camera_types[i % len(camera_types)]
        result = svc.camera_event(
            session, cameras[(i * 7) % len(cameras)], event_type, occurred_at=t0, now=t0
        )
        return result["case"]
    p = points[rng.randrange(len(points))]
    if category is None or source == "camera":
        category = rng.choice(list(DESCRIPTIONS))
    description = rng.choice(DESCRIPTIONS[category])
    actor = None
    name = contact = None
    if source == "patrol" and patrols:
        actor = svc.Actor("worker", worker_id=patrols[(i * 13) % len(patrols)])
        source_label = "网格员巡查发现"
    elif source in ("hotline", "superior"):
        actor = svc.Actor("centre", name="指挥中心值班员")
        source_label = "12345热线转来" if source == "hotline" else "区指挥中心交办"
    else:
        source_label = "居民反映"
    if source in ("resident", "hotline"):
        name = rng.choice("王李张刘陈杨黄赵吴周") + rng.choice(["先生", "女士"])
        contact = f"1{rng.choice('3589')}{rng.randrange(10**8, 10**9)}"
    result = svc.create_case(
        session,
        svc.Report(
            x=p.x,
            y=p.y,
            category=category,
            source=source,
            description=f"{source_label}：{description}",
            reporter_name=name,
            reporter_contact=contact,
            address=p.address,
        ),
        actor=actor,
        now=t0,
    )
    return result["case"]


def _act(
    session: Session,
    view: dict[str, Any],
    action: str,
    actor: svc.Actor | None,
    at: datetime | None,
    note: str | None = None,
    **params: Any,
) -> dict[str, Any] | None:
    """Take one action at ``at``; None when it cannot be taken (no time left, or refused)."""
    if actor is None or at is None:
        return None
    try:
        with session.begin_nested():
            return svc.perform(
                session,
                view["id"],
                action,
                actor,
                svc.ActionInput(note=note, params=params),
                now=at,
            )["case"]
    except AppError:
        return None


def _play(
    session: Session,
    rng: random.Random,
    view: dict[str, Any],
    outcome: str,
    clock: _Clock,
    centre: svc.Actor,
    open_views: list[dict[str, Any]],
) -> dict[str, Any] | None:
    if view["status"] == "reported":  # camera cases under review, or nobody to route to
        nxt = _act(session, view, "dispatch", centre, clock.after(0.3))
        if nxt is None:
            return view
        view = nxt
    if outcome == "cancelled":
        return (
            _act(
                session,
                view,
                "cancel",
                centre,
                clock.after(0.5),
                "经核实不属实",
                reason="not_a_problem",
            )
            or view
        )
    if outcome == "merged" and open_views:
        into = open_views[rng.randrange(len(open_views))]
        merged = _act(
            session, view, "merge", centre, clock.after(0.4), "同一问题重复上报", into=into["id"]
        )
        if merged is not None:
            return merged
    if outcome == "returned":
        return (
            _act(
                session,
                view,
                "return",
                _handler(view),
                clock.after(1.0),
                "不属于本网格，请重新派单",
            )
            or view
        )
    if outcome == "transferred":
        moved = _act(
            session,
            view,
            "transfer",
            _handler(view),
            clock.after(0.8),
            "位于相邻网格，转交对方网格员",
        )
        view = moved or view
    if outcome in ("escalated_chief", "escalated_department"):
        up = _act(session, view, "escalate", _handler(view), clock.after(1.5), "需上级协调处置")
        view = up or view
        if up is not None and outcome == "escalated_department" and view["escalation_level"] < 2:
            view = (
                _act(session, view, "escalate", _handler(view), clock.after(2.0), "需职能部门处置")
                or view
            )
    if outcome == "dispatched":
        return view
    accepted = _act(session, view, "accept", _handler(view), clock.after(rng.uniform(0.2, 3)))
    if accepted is None:
        return view
    view = accepted
    if outcome in ("accepted", "escalated_chief") and rng.random() < 0.6:
        return view
    deadline = _deadline(view)
    late = rng.random() < 0.22
    span = (deadline - clock.t).total_seconds() / 3600 if deadline else 8.0
    hours = span + rng.uniform(2, 30) if late else max(0.3, rng.uniform(0.1, 0.9) * span)
    resolved = _act(session, view, "resolve", _handler(view), clock.after(hours), "已现场处置完毕")
    if resolved is None:
        return view
    view = resolved
    if outcome == "resolved" and view["status"] == "resolved":
        return view
    if view["status"] == "resolved":
        if outcome == "reopened":
            again = _act(session, view, "reopen", centre, clock.after(4), "复核未通过，重新处置")
            if again is None:
                return view
            view = _act(session, again, "accept", _handler(again), clock.after(1)) or again
            if view["status"] != "accepted":
                return view
            view = (
                _act(session, view, "resolve", _handler(view), clock.after(6), "已重新处置") or view
            )
            if view["status"] != "resolved":
                return view
        view = (
            _act(session, view, "verify", centre, clock.after(rng.uniform(1, 20)), "核查属实")
            or view
        )
    if view["status"] != "verified" or outcome == "verified":
        return view
    if outcome == "timeout":
        return (
            _act(
                session,
                view,
                "close",
                svc.SYSTEM,
                clock.after(73),
                "评价期满未评价，自动结案",
                reason="rating_timeout",
            )
            or view
        )
    score = rng.choices([5, 4, 3, 2, 1], [50, 25, 12, 8, 5])[0]
    solved = score >= 3 if rng.random() < 0.9 else score < 3
    return (
        _act(
            session,
            view,
            "rate",
            svc.Actor("resident"),
            clock.after(rng.uniform(2, 60)),
            RATING_NOTES[0 if score == 5 else 1 if solved else 4],
            satisfaction=score,
            solved=solved,
        )
        or view
    )

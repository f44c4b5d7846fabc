"""The case loop's vocabulary: states, actions, sources and their Chinese names, the
workflow table ``TRANSITIONS`` (state, action) -> next state and who may act, the actor and the
errors an action can raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.errors import AppError, BadParameter, Conflict
from app.models.case import CASE_FINAL_STATUSES, CASE_PENDING_STATUSES, CASE_STATUSES, sql_list

STATUS_NAMES = {
    "reported": "已上报",
    "dispatched": "已派单",
    "accepted": "处置中",
    "resolved": "已反馈",
    "verified": "已核查",
    "closed": "已结案",
    "cancelled": "已作废",
}
# How the pages draw a case of each state (badges, map markers); an overdue case is drawn in
# ``OVERDUE_COLOR`` whatever its state. Pages get both from their JSON settings.
STATUS_COLORS = {
    "reported": "#6a1b9a",
    "dispatched": "#ef6c00",
    "accepted": "#1565c0",
    "resolved": "#00897b",
    "verified": "#2e7d32",
    "closed": "#455a64",
    "cancelled": "#757575",
}
OVERDUE_COLOR = "#d32f2f"
# What a state waits for, where a list of states says it (the desk's filter).
STATUS_HINTS = {"reported": "待派单/审核", "resolved": "待核查", "verified": "待评价"}
ACTION_NAMES = {
    "report": "上报",
    "dispatch": "派单",
    "accept": "接单",
    "resolve": "处置反馈",
    "verify": "核查通过",
    "reopen": "核查不通过",
    "rate": "评价",
    "close": "结案",
    "escalate": "上报升级",
    "transfer": "转派",
    "return": "退回",
    "cancel": "作废",
    "merge": "合并",
}
SOURCE_NAMES = {
    "resident": "居民上报",
    "patrol": "网格员巡查",
    "camera": "视频智能分析",
    "hotline": "热线",
    "superior": "上级交办",
}
MAX_ID = 2**31 - 1
ACTOR_ROLES = ("centre", "worker", "micro_chief", "department", "resident", "system")
ESCALATION_NAMES = {0: "网格员", 1: "微网格长", 2: "职能部门"}
OPEN_STATES = tuple(s for s in CASE_STATUSES if s not in CASE_FINAL_STATUSES)
# States in which the case still waits for handling: these can be overdue.
PENDING_STATES = CASE_PENDING_STATUSES
FINAL_STATES = CASE_FINAL_STATUSES
# SQL list of the final states, for ``status IN …`` / ``NOT IN …``.
FINAL_SQL = sql_list(FINAL_STATES)
# SQL: the case ``c`` waits for handling past its deadline (``:now``).
OVERDUE_SQL = f"(c.status IN {sql_list(PENDING_STATES)} AND c.deadline < :now)"
assert set(STATUS_NAMES) == set(STATUS_COLORS) == set(CASE_STATUSES)

CANCEL_REASONS = ("duplicate", "not_a_problem", "false_alarm", "other")


@dataclass(frozen=True)
class Transition:
    """Where an action leads from a state, and which parts may take it."""

    to: str
    who: frozenset[str]


def _t(to: str, *who: str) -> Transition:
    return Transition(to, frozenset(who))


# The workflow. Keys absent from this table are illegal (409).
TRANSITIONS: dict[tuple[str, str], Transition] = {
    ("reported", "dispatch"): _t("dispatched", "centre", "system"),
    ("reported", "cancel"): _t("cancelled", "centre"),
    ("reported", "merge"): _t("cancelled", "centre"),
    ("dispatched", "accept"): _t("accepted", "handler"),
    ("dispatched", "escalate"): _t("dispatched", "handler", "supervisor", "centre"),
    ("dispatched", "transfer"): _t("dispatched", "handler", "centre"),
    ("dispatched", "return"): _t("reported", "handler"),
    ("dispatched", "cancel"): _t("cancelled", "centre"),
    ("dispatched", "merge"): _t("cancelled", "centre"),
    ("accepted", "resolve"): _t("resolved", "handler"),
    ("accepted", "escalate"): _t("dispatched", "handler", "supervisor", "centre"),
    ("accepted", "transfer"): _t("dispatched", "handler", "centre"),
    ("accepted", "return"): _t("reported", "handler"),
    ("accepted", "cancel"): _t("cancelled", "centre"),
    ("accepted", "merge"): _t("cancelled", "centre"),
    ("resolved", "verify"): _t("verified", "supervisor", "centre", "system"),
    ("resolved", "reopen"): _t("dispatched", "supervisor", "centre"),
    ("verified", "rate"): _t("closed", "resident"),
    ("verified", "close"): _t("closed", "centre", "system"),
}
ACTIONS: tuple[str, ...] = tuple(sorted({a for _, a in TRANSITIONS}))
STATES: tuple[str, ...] = CASE_STATUSES
# Actions that must say why.
NOTE_REQUIRED = frozenset({"escalate", "return", "resolve", "reopen", "cancel", "transfer"})


class IllegalTransition(Conflict):
    """The action is not allowed in the case's state; ``allowed`` lists what is."""

    code = "illegal_transition"


class StaleVersion(Conflict):
    """The case changed since the caller read it."""

    code = "stale_version"


class ActionForbidden(AppError):
    """The actor may not take this action on this case."""

    http_status = 403
    code = "forbidden"


class IdempotencyMismatch(Conflict):
    """An idempotency key was reused for a different report."""

    code = "idempotency_mismatch"


@dataclass(frozen=True)
class Actor:
    """Who acts: a role, and the worker or department behind it when there is one."""

    role: str
    worker_id: int | None = None
    department_id: int | None = None
    name: str | None = None
    # The grids the acting account answers for (from app.auth.policy.grid_scope); None: every
    # grid. Where a case may be dispatched, transferred or merged to is bounded by it.
    scope: frozenset[int] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.role not in ACTOR_ROLES:
            raise BadParameter(
                "actor.role", f"'{self.role}' is not one of {', '.join(ACTOR_ROLES)}"
            )

    @property
    def label(self) -> str:
        parts = [self.role]
        if self.worker_id is not None:
            parts.append(f"worker:{self.worker_id}")
        if self.department_id is not None:
            parts.append(f"department:{self.department_id}")
        if self.name:
            parts.append(self.name)
        return " ".join(parts)[:80]


SYSTEM = Actor("system", name="系统")


@dataclass
class ActionInput:
    """What an action may carry: a note, where it happened, photos and action parameters."""

    note: str | None = None
    lon: float | None = None
    lat: float | None = None
    crs: str | None = None
    photos: list[bytes] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    version: int | None = None

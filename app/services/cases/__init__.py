"""The case loop (事件闭环): report, dispatch, handle, escalate, verify, rate.

The workflow is the explicit table ``TRANSITIONS``: (state, action) -> next state and who may
act. Every action is one business operation recording a ``case_event`` (actor, time, place,
note); the caller wraps it in ``app.db.transaction``. An action the state does not allow raises
``IllegalTransition`` (409) listing the allowed ones; a stale ``version`` raises ``StaleVersion``
(409). Routing comes from ``app.services.locate``.

Who may act is named by the parts an actor can play on a case:

- ``centre``: the command centre (指挥中心) — dispatches, transfers, cancels, merges, verifies.
- ``handler``: whoever holds the case now — the assigned worker or chief (by worker id), or a
  member of the department the case was escalated to (by department id).
- ``supervisor``: a micro-grid chief or grid chief of the case's grid or one of its ancestors.
- ``resident``: the person who reported it, known by the case code — rates the result.
- ``system``: the platform itself (automatic dispatch, rating timeout, categories without review).

The package is cut along the loop's seams: ``states`` (vocabulary and ``TRANSITIONS``),
``settings`` (settings and categories), ``queries`` (reading), ``intake`` (reports, idempotency,
photos), ``workflow`` (acting) and ``cameras``. Import the package: everything public is here.

Authentication is not this package's job: the API passes the actor it was given.
"""

from __future__ import annotations

from app.models.case import CASE_SOURCES
from app.services.cases.cameras import (
    camera_event,
)
from app.services.cases.intake import (
    Report,
    create_case,
    photo,
)
from app.services.cases.queries import (
    ACTOR_ROLE_NAMES,
    CaseFilter,
    actor_name,
    allowed_actions,
    case_view,
    events_of,
    find_duplicates,
    get_case,
    list_cases,
    personal_scrubber,
    public_report_answer,
    public_view,
    routing_names,
    where_clause,
)
from app.services.cases.settings import (
    SETTINGS_DEFAULTS,
    categories,
    get_category,
    get_settings,
    update_settings,
)
from app.services.cases.states import (
    ACTION_NAMES,
    ACTIONS,
    ACTOR_ROLES,
    CANCEL_REASONS,
    ESCALATION_NAMES,
    FINAL_STATES,
    MAX_ID,
    NOTE_REQUIRED,
    OPEN_STATES,
    OVERDUE_COLOR,
    OVERDUE_SQL,
    PENDING_STATES,
    SOURCE_NAMES,
    STATES,
    STATUS_COLORS,
    STATUS_HINTS,
    STATUS_NAMES,
    SYSTEM,
    TRANSITIONS,
    ActionForbidden,
    ActionInput,
    Actor,
    IdempotencyMismatch,
    IllegalTransition,
    StaleVersion,
    Transition,
)
from app.services.cases.workflow import (
    HANDLERS,
    MAX_TRANSFER_M,
    close_unrated,
    parts_of,
    perform,
)

__all__ = [
    "ACTIONS",
    "ACTION_NAMES",
    "ACTOR_ROLES",
    "ACTOR_ROLE_NAMES",
    "ActionForbidden",
    "ActionInput",
    "Actor",
    "CANCEL_REASONS",
    "CASE_SOURCES",
    "CaseFilter",
    "ESCALATION_NAMES",
    "FINAL_STATES",
    "HANDLERS",
    "IdempotencyMismatch",
    "IllegalTransition",
    "MAX_ID",
    "MAX_TRANSFER_M",
    "NOTE_REQUIRED",
    "OPEN_STATES",
    "OVERDUE_COLOR",
    "OVERDUE_SQL",
    "PENDING_STATES",
    "Report",
    "SETTINGS_DEFAULTS",
    "SOURCE_NAMES",
    "STATES",
    "STATUS_COLORS",
    "STATUS_HINTS",
    "STATUS_NAMES",
    "SYSTEM",
    "StaleVersion",
    "TRANSITIONS",
    "Transition",
    "actor_name",
    "allowed_actions",
    "camera_event",
    "case_view",
    "categories",
    "close_unrated",
    "create_case",
    "events_of",
    "find_duplicates",
    "get_case",
    "get_category",
    "get_settings",
    "list_cases",
    "parts_of",
    "perform",
    "personal_scrubber",
    "photo",
    "public_report_answer",
    "public_view",
    "routing_names",
    "update_settings",
    "where_clause",
]

"""Who may do what: the one place that decides every read and write.

Every endpoint of the app has a ``Rule`` in ``RULES`` (an endpoint without one is refused, and a
test holds the table to the app's routes). A rule names the roles that may call the endpoint and,
for records that belong to a grid, a record check run before the view: a worker asking for
another grid's household gets 404, as if it did not exist. List endpoints narrow their query by
``grid_scope`` / ``case_scope``; masking decisions are ``may_reveal`` and ``sees_tags``.

Roles (``app_user.role``):

- ``admin``: everything, user management, the audit log.
- ``centre``: the command centre of a street (``app_user.grid_id``; none: every grid) — all its
  grids and cases, edits grids, dispatches.
- ``grid_chief`` / ``micro_chief``: the grids they are assigned to and everything below.
- ``worker`` / ``party_member``: their own micro-grids (and patches) and their own cases; a party
  member sees the households linked to him.
- ``department``: the cases escalated to it.
- ``camera_feed``: a video-analytics system posting camera events with a token.
- anonymous (a resident): reports a case, reads and rates it by its code.

Everything is held to the caller's grids (``grid_scope``): lists narrow themselves, a record
outside is 404, the grids above one's own are outlines only (``grid_view``), an override area is
edited only within one's territory (``area_visible``), a case is sent only to one's grids and
workers (``Actor.scope``), and imports are the administrator's or held to a centre's street
(``import_scope``). Global settings are the administrator's.

Why one module of this size: it is the table of every endpoint's rule, and the rules must be
read side by side to be checked; the scope queries they call are small and live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import AppError, BadParameter, NotFound
from app.services import grid_tree


class Unauthenticated(AppError):
    """No valid session: sign in first."""

    http_status = 401
    code = "unauthenticated"


class Forbidden(AppError):
    """Signed in, but this role may not do this."""

    http_status = 403
    code = "forbidden"


@dataclass
class Principal:
    """Who is asking: an account and what it is linked to, or nobody (a resident)."""

    user_id: int | None = None
    username: str | None = None
    role: str = "anonymous"
    worker_id: int | None = None
    department_id: int | None = None
    grid_id: int | None = None
    session_id: int | None = None
    session_kind: str | None = None
    csrf_token: str | None = None
    display_name: str | None = None
    _grid_scope: frozenset[int] | None = field(default=None, repr=False)
    _grid_roots: tuple[int, ...] = field(default=(), repr=False)
    _scope_loaded: bool = field(default=False, repr=False)

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def label(self) -> str:
        return self.display_name or self.username or "匿名 / anonymous"


ANONYMOUS_ROLE = "anonymous"
STAFF = frozenset(
    {"admin", "centre", "grid_chief", "micro_chief", "worker", "party_member", "department"}
)
FIELD = STAFF - {"department"}
SUPERVISORS = frozenset({"admin", "centre", "grid_chief", "micro_chief"})
EDITORS = frozenset({"admin", "centre"})
ADMIN = frozenset({"admin"})
EVERYONE = STAFF | {"camera_feed", ANONYMOUS_ROLE}
# Roles that may export ledgers with personal data, and see a full phone number on request.
EXPORTERS = frozenset({"admin", "centre"})
# Those who record field work (visits, check-ins) as themselves, and those who may read it.
WORKERS = frozenset({"grid_chief", "micro_chief", "worker", "party_member"})
FIELD_READERS = FIELD
# Those who read departments' networks (多网合一): the centre and the departments themselves.
NETWORK_READERS = EDITORS | {"department"}


# ---------------------------------------------------------------- grid scope


def sees_every_grid(p: Principal) -> bool:
    """Say whether ``p`` answers for every grid (``grid_scope`` is None) — no query needed."""
    return p.role == "admin" or (p.role == "centre" and p.grid_id is None)


def grid_scope(session: Session, p: Principal) -> frozenset[int] | None:
    """Return the ids of the grids ``p`` answers for (their subtrees), or None for every grid."""
    if sees_every_grid(p):
        return None
    _load_scope(session, p)
    return p._grid_scope


def grid_roots(session: Session, p: Principal) -> tuple[int, ...] | None:
    """Return the grids ``p`` is assigned (the roots of :func:`grid_scope`'s subtrees, sorted),
    or None for every grid."""
    if sees_every_grid(p):
        return None
    _load_scope(session, p)
    return p._grid_roots


def _load_scope(session: Session, p: Principal) -> None:
    if p._scope_loaded:
        return
    roots: list[int] = []
    if p.role == "centre" and p.grid_id is not None:
        roots = [p.grid_id]
    elif p.role in ("grid_chief", "micro_chief", "worker", "party_member") and p.worker_id:
        roots = list(
            session.scalars(
                text("SELECT grid_id FROM grid_assignment WHERE worker_id = :w"),
                {"w": p.worker_id},
            )
        )
    ids: frozenset[int] = frozenset()
    if roots:
        ids = grid_tree.scope_of(session, roots)
    p._grid_scope, p._grid_roots, p._scope_loaded = ids, tuple(sorted(set(roots))), True


def in_scope(session: Session, p: Principal, grid_id: int | None) -> bool:
    """Say whether ``grid_id`` is one of the grids ``p`` answers for."""
    scope = grid_scope(session, p)
    return scope is None or (grid_id is not None and grid_id in scope)


def outline_scope(session: Session, p: Principal) -> frozenset[int]:
    """Return the ancestors of ``p``'s grids that are not its own: shown as outlines only.

    A worker sees its micro-grids in full and, for orientation, the outline (shape, code, name
    and level; no notice board, no household count, no children) of the grids above them. A
    street centre's street is a top-level grid, so it has none; neither has the administrator.
    """
    scope = grid_scope(session, p)
    if not scope:
        return frozenset()
    return frozenset(grid_tree.ancestor_ids(session, scope, include_self=False)) - scope


def grid_view(session: Session, p: Principal, grid_id: int | None) -> str | None:
    """Say how much of a grid ``p`` may see: ``"full"``, ``"outline"`` or None (not at all)."""
    if in_scope(session, p, grid_id):
        return "full"
    if grid_id is not None and grid_id in outline_scope(session, p):
        return "outline"
    return None


def scope_roots(session: Session, p: Principal) -> list[int] | None:
    """Return the current top grids of ``p``'s grids (those whose parent is not its), or None
    for every grid."""
    scope = grid_scope(session, p)
    if scope is None:
        return None
    return list(
        session.scalars(
            text(
                """SELECT id FROM grid WHERE id = ANY(CAST(:ids AS integer[])) AND valid_to IS NULL
                     AND (parent_id IS NULL OR NOT parent_id = ANY(CAST(:ids AS integer[]))) ORDER BY code"""
            ),
            {"ids": sorted(scope)},
        )
    )


def scoped_grid(
    session: Session, p: Principal, given: int | None, param: str = "grid"
) -> int | None:
    """Return the grid a territory-wide figure is computed for: ``given`` if it is ``p``'s
    (404 if not); with none given, every grid for an unscoped caller, else ``p``'s one top grid
    (a caller with several must name one: 400)."""
    if given is not None:
        _need(in_scope(session, p, given), f"grid {given}")
        return given
    roots = scope_roots(session, p)
    if roots is None:
        return None
    if not roots:
        raise NotFound("没有您负责的网格 / no grid of yours")
    if len(roots) > 1:
        raise BadParameter(
            param,
            f"您负责多个网格，请指定 {param}= / name one of your grids ({', '.join(map(str, roots))})",
        )
    return roots[0]


_TERRITORY_SQL = """(SELECT ST_Union(t.geom) FROM grid t WHERE t.id = ANY(CAST(:ids AS integer[])) AND t.valid_to IS NULL
                         AND (t.parent_id IS NULL OR NOT t.parent_id = ANY(CAST(:ids AS integer[]))))"""


def area_visible(session: Session, p: Principal, area_id: int, *, whole: bool = False) -> bool:
    """Say whether an override area reaches into ``p``'s grids (``whole``: lies within them,
    0.5 m of tolerance along the boundary — what it takes to edit or delete it)."""
    scope = grid_scope(session, p)
    if scope is None:
        return True
    if not scope:
        return False
    cond = (
        f"ST_CoveredBy(o.geom, ST_Buffer({_TERRITORY_SQL}::geography, 0.5)::geometry)"
        if whole
        else f"ST_Intersects(o.geom, {_TERRITORY_SQL}) AND NOT ST_Touches(o.geom, {_TERRITORY_SQL})"
    )
    return bool(
        session.scalar(
            text(f"SELECT {cond} FROM override_area o WHERE o.id = :id"),
            {"id": area_id, "ids": sorted(scope)},
        )
    )


def worker_in_scope(session: Session, p: Principal, worker_id: int | None) -> bool:
    """Say whether a worker is assigned to one of ``p``'s grids."""
    scope = grid_scope(session, p)
    if scope is None:
        return True
    if worker_id is None or not scope:
        return False
    return (
        session.scalar(
            text(
                "SELECT 1 FROM grid_assignment WHERE worker_id = :w AND grid_id = ANY(CAST(:ids AS integer[])) LIMIT 1"
            ),
            {"w": worker_id, "ids": sorted(scope)},
        )
        is not None
    )


@dataclass(frozen=True)
class FieldScope:
    """Whose field work (visits, check-ins) a principal may see: personal data of the worker and
    of the households. The worker themself; the chiefs over the grid (a record in their grids or
    by a worker assigned there) and the street's centre; the administrator. Not other workers,
    not party members (but their own), not departments."""

    everything: bool = False
    worker_id: int | None = None
    grid_ids: frozenset[int] | None = None

    def sql(self, alias: str, *, grid_column: str | None = "grid_id") -> tuple[str, dict[str, Any]]:
        if self.everything:
            return "TRUE", {}
        parts: list[str] = []
        params: dict[str, Any] = {}
        if self.worker_id is not None:
            parts.append(f"{alias}.worker_id = :fs_worker")
            params["fs_worker"] = self.worker_id
        if self.grid_ids:
            params["fs_grids"] = sorted(self.grid_ids)
            if grid_column:
                parts.append(f"{alias}.{grid_column} = ANY(CAST(:fs_grids AS integer[]))")
            parts.append(
                f"EXISTS (SELECT 1 FROM grid_assignment fa WHERE fa.worker_id = {alias}.worker_id"
                " AND fa.grid_id = ANY(CAST(:fs_grids AS integer[])))"
            )
        return ("(" + " OR ".join(parts) + ")") if parts else "FALSE", params

    def worker_ids(self, session: Session) -> frozenset[int] | None:
        """The workers whose field work this scope covers (None: everyone)."""
        if self.everything:
            return None
        ids = {self.worker_id} if self.worker_id is not None else set()
        if self.grid_ids:
            ids |= set(
                session.scalars(
                    text(
                        "SELECT worker_id FROM grid_assignment WHERE grid_id = ANY(CAST(:g AS integer[]))"
                    ),
                    {"g": sorted(self.grid_ids)},
                )
            )
        return frozenset(ids)


def field_scope(session: Session, p: Principal) -> FieldScope:
    """Return whose visits and check-ins ``p`` may see."""
    if p.role == "admin":
        return FieldScope(everything=True)
    if p.role == "centre":
        scope = grid_scope(session, p)
        return FieldScope(everything=True) if scope is None else FieldScope(grid_ids=scope)
    if p.role in ("grid_chief", "micro_chief"):
        return FieldScope(worker_id=p.worker_id, grid_ids=grid_scope(session, p) or frozenset())
    if p.role in ("worker", "party_member"):
        return FieldScope(worker_id=p.worker_id if p.worker_id else -1)
    return FieldScope()


def visit_arg(name: str = "visit_id") -> Check:
    """Require a visit to be in the caller's field scope (404 otherwise)."""

    def check(session: Session, p: Principal, args: dict[str, Any]) -> None:
        cond, params = field_scope(session, p).sql("v")
        found = session.execute(
            text(f"SELECT 1 FROM visit v WHERE v.id = :id AND {cond}"), {**params, "id": args[name]}
        ).first()
        _need(found is not None, f"visit {args[name]}")

    return check


def patrol_arg(name: str = "patrol_id") -> Check:
    """Require a patrol to be in the caller's field scope (its worker's; 404 otherwise)."""

    def check(session: Session, p: Principal, args: dict[str, Any]) -> None:
        cond, params = field_scope(session, p).sql("pt", grid_column=None)
        found = session.execute(
            text(f"SELECT 1 FROM patrol pt WHERE pt.id = :id AND {cond}"),
            {**params, "id": args[name]},
        ).first()
        _need(found is not None, f"patrol {args[name]}")

    return check


@dataclass(frozen=True)
class CaseScope:
    """What cases a principal may see: None fields mean no restriction on that side.

    A case is visible when it lies in ``grid_ids``, or is assigned to ``worker_id``, or was
    escalated to ``department_id`` (an OR of the fields that are set); ``everything`` opens all.
    """

    everything: bool = False
    grid_ids: frozenset[int] | None = None
    worker_id: int | None = None
    department_id: int | None = None

    def sql(self, alias: str = "c") -> tuple[str, dict[str, Any]]:
        """Return a SQL condition on a ``"case"`` alias and its parameters."""
        if self.everything:
            return "TRUE", {}
        parts: list[str] = []
        params: dict[str, Any] = {}
        if self.grid_ids:
            parts.append(f"{alias}.grid_id = ANY(CAST(:scope_grids AS integer[]))")
            params["scope_grids"] = sorted(self.grid_ids)
        if self.worker_id is not None:
            parts.append(f"{alias}.assignee_id = :scope_worker")
            params["scope_worker"] = self.worker_id
        if self.department_id is not None:
            parts.append(f"{alias}.department_id = :scope_department")
            params["scope_department"] = self.department_id
        return ("(" + " OR ".join(parts) + ")") if parts else "FALSE", params


def case_scope(session: Session, p: Principal) -> CaseScope:
    """Return the cases ``p`` may see."""
    if p.role == "admin":
        return CaseScope(everything=True)
    if p.role == "centre":
        scope = grid_scope(session, p)
        return CaseScope(everything=True) if scope is None else CaseScope(grid_ids=scope)
    if p.role in ("grid_chief", "micro_chief", "worker", "party_member"):
        return CaseScope(grid_ids=grid_scope(session, p) or frozenset(), worker_id=p.worker_id)
    if p.role == "department":
        return CaseScope(department_id=p.department_id if p.department_id else -1)
    return CaseScope()


def case_visible(session: Session, p: Principal, case_ref: str | int) -> bool:
    """Say whether ``p`` may see the case with this id or code."""
    cond, params = case_scope(session, p).sql("c")
    ref = str(case_ref)
    numeric = ref.isascii() and ref.isdigit()
    if numeric and not 0 < int(ref) <= 2**31 - 1:
        return False  # no such id can exist
    if len(ref) > 80 or "\x00" in ref:
        return False
    key = "c.id = :ref_id" if numeric else "c.code = :ref_code"
    params.update({"ref_id": int(ref)} if numeric else {"ref_code": ref})
    found = session.execute(text(f'SELECT 1 FROM "case" c WHERE {key} AND {cond}'), params).first()
    return found is not None


def household_grid(session: Session, household_id: int) -> tuple[int, int | None] | None:
    """Return (grid id, linked party member) of a household, or None."""
    row = session.execute(
        text("SELECT grid_id, linked_member_id FROM household WHERE id = :id"),
        {"id": household_id},
    ).first()
    return (row.grid_id, row.linked_member_id) if row else None


def household_visible(session: Session, p: Principal, household_id: int) -> bool:
    """Say whether ``p`` may see this household at all."""
    found = household_grid(session, household_id)
    if found is None or p.role not in FIELD:
        return False
    grid_id, member = found
    if p.role == "party_member":
        return member is not None and member == p.worker_id
    return in_scope(session, p, grid_id)


def sees_tags(p: Principal) -> bool:
    """Say whether ``p`` may see a visible household's sensitive tags (独居、残疾、低保 …).

    Those responsible for the household: its street's centre, its chiefs and workers, and the
    party member linked to it — not the administrator, who runs the system, not the grids."""
    return p.role in ("centre", "grid_chief", "micro_chief", "worker", "party_member")


def may_reveal(p: Principal, kind: str) -> bool:
    """Say whether ``p``'s role needs full personal values of ``kind`` (asked for explicitly)."""
    if kind == "household":
        return p.role in ("admin", "centre", "grid_chief", "micro_chief", "worker", "party_member")
    if kind == "case":
        return p.role in ("admin", "centre", "grid_chief", "micro_chief", "worker", "department")
    return p.role == "admin"


def may_export_personal(p: Principal) -> bool:
    return p.role in EXPORTERS


# What a street centre may import, each record held to its grids (refused whole otherwise);
# grids, workers and departments shape the whole system and are the administrator's.
CENTRE_IMPORTS = frozenset({"assignments", "households", "service_points", "cameras"})


def import_scope(session: Session, p: Principal, kind: str) -> frozenset[int] | None:
    """Return the grids an import of ``kind`` by ``p`` is held to (None: any); Forbidden if
    ``p`` may not import that kind at all."""
    if p.role == "admin":
        return None
    if p.role == "centre" and kind in CENTRE_IMPORTS:
        return grid_scope(session, p)
    raise Forbidden(
        f"角色 {p.role} 无权导入 {kind} / the role '{p.role}' may not import {kind} "
        "(grids, workers and departments: the administrator only)"
    )


# Who may report a case through which channel: anyone as a resident (the camera feed excepted),
# field staff from patrol, the centre from the hotline or a superior's referral. Camera cases come
# only from the camera feed's events (/api/camera-events), never from a report.
SOURCE_ROLES: dict[str, frozenset[str]] = {
    "resident": EVERYONE - {"camera_feed"},
    "patrol": FIELD,
    "hotline": EDITORS,
    "superior": EDITORS,
    "camera": frozenset(),
}


def may_report_source(p: Principal, source: str) -> bool:
    """Say whether ``p`` may report a case as coming from ``source``."""
    return p.role in SOURCE_ROLES.get(source, frozenset())


def check_report_source(p: Principal, source: str) -> None:
    """Refuse (403, naming ``source``) a report channel ``p`` does not own: without an account a
    case comes from a resident; camera cases come only from the camera feed. A source that is no
    channel at all is left to the case service to name."""
    if source not in SOURCE_ROLES or may_report_source(p, source):
        return
    if source == "camera":
        message = (
            "摄像头事件只能由视频分析系统经 /api/camera-events 上报 / source 'camera' is only "
            "for camera events posted by the camera feed to /api/camera-events"
        )
    elif p.role == ANONYMOUS_ROLE:
        message = (
            f"未登录只能以居民身份上报 / without signing in a case can only come from a "
            f"resident, not '{source}'"
        )
    else:
        message = (
            f"角色 {p.role} 不能以 '{source}' 渠道上报 / the role '{p.role}' may not report as "
            f"'{source}'"
        )
    raise Forbidden(message, param="source")


# ---------------------------------------------------------------- rules


Check = Callable[[Session, Principal, dict[str, Any]], None]


@dataclass(frozen=True)
class Rule:
    """Who may call an endpoint, and the record check to run before the view."""

    roles: frozenset[str]
    check: Check | None = None

    @property
    def public(self) -> bool:
        return ANONYMOUS_ROLE in self.roles


_WHAT = {
    "grid": "网格",
    "case": "事件",
    "household": "住户",
    "photo": "照片",
    "change": "变更记录",
    "override area": "管辖例外区域",
    "camera": "摄像头",
    "party member": "党员",
    "point entry": "积分记录",
    "network": "专业网格图层",
    "service point": "服务站点",
    "patrol": "巡查",
}


def _chinese_what(what: str) -> str:
    """ "case SJ…" → "事件 SJ…"."""
    for en, zh in sorted(_WHAT.items(), key=lambda kv: -len(kv[0])):
        if what.startswith(en + " "):
            return f"{zh} {what[len(en) + 1 :]} "
    return what


def _need(ok: bool, what: str) -> None:
    if not ok:
        # 404, not 403: a record outside one's grids is not acknowledged to exist.
        raise NotFound(f"{_chinese_what(what)}不存在或不在您的范围内 / {what} not found")


def grid_arg(name: str = "grid_id") -> Check:
    """Require the grid named by a URL part to be in the caller's grids."""

    def check(session: Session, p: Principal, args: dict[str, Any]) -> None:
        _need(in_scope(session, p, args.get(name)), f"grid {args.get(name)}")

    return check


def network_visible(session: Session, p: Principal, network_id: Any) -> bool:
    """Say whether ``p`` sees a departmental network: the administrator every one, a centre
    its street's (every one when it has no street), a department its own."""
    row = session.execute(
        text("SELECT department_id, grid_id FROM network WHERE id = :n"), {"n": network_id}
    ).one_or_none()
    if row is None:
        return False
    if p.role == "admin":
        return True
    if p.role == "department":
        return p.department_id is not None and row.department_id == p.department_id
    if p.role == "centre":
        scope = grid_scope(session, p)
        return scope is None or (row.grid_id is not None and row.grid_id in scope)
    return False


def network_arg(name: str = "network_id") -> Check:
    """Require the network named by a URL part to be one the caller sees (404 otherwise)."""

    def check(session: Session, p: Principal, args: dict[str, Any]) -> None:
        _need(network_visible(session, p, args.get(name)), f"network {args.get(name)}")

    return check


def grid_or_outline_arg(name: str = "grid_id") -> Check:
    """Require the grid to be the caller's, or above the caller's grids (seen as an outline)."""

    def check(session: Session, p: Principal, args: dict[str, Any]) -> None:
        _need(grid_view(session, p, args.get(name)) is not None, f"grid {args.get(name)}")

    return check


def area_arg(*, whole: bool) -> Check:
    """Require an override area to reach into the caller's grids (``whole``: to lie within)."""

    def check(session: Session, p: Principal, args: dict[str, Any]) -> None:
        _need(
            area_visible(session, p, args["area_id"], whole=whole),
            f"override area {args['area_id']}",
        )

    return check


def case_arg(name: str = "ref") -> Check:
    def check(session: Session, p: Principal, args: dict[str, Any]) -> None:
        _need(case_visible(session, p, args[name]), f"case {args[name]}")

    return check


def household_arg(name: str = "household_id") -> Check:
    def check(session: Session, p: Principal, args: dict[str, Any]) -> None:
        _need(household_visible(session, p, args[name]), f"household {args[name]}")

    return check


def photo_arg(session: Session, p: Principal, args: dict[str, Any]) -> None:
    case_id = session.scalar(
        text("SELECT case_id FROM case_photo WHERE id = :id"), {"id": args["photo_id"]}
    )
    _need(case_id is not None and case_visible(session, p, case_id), f"photo {args['photo_id']}")


def change_arg(session: Session, p: Principal, args: dict[str, Any]) -> None:
    scope = grid_scope(session, p)
    if scope is None:
        return
    grids = session.scalars(
        text("SELECT parent_id FROM grid_change WHERE id = :id"), {"id": args["change_id"]}
    ).all()
    _need(bool(grids) and all(g in scope for g in grids), f"change {args['change_id']}")


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def body_parent(session: Session, p: Principal, args: dict[str, Any]) -> None:
    """A new grid's parent (``properties.parent_id`` or ``parent_id``) must be the caller's."""
    body = args.get("_body") or {}
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    raw = props.get("parent_id", props.get("parent", body.get("parent_id")))
    parent = _int_or_none(raw)
    if parent is not None:
        _need(in_scope(session, p, parent), f"grid {parent}")
    elif raw is None and grid_scope(session, p) is not None:
        raise Forbidden(
            "只有管理员可以绘制顶级网格 / only the administrator draws a top-level grid "
            "(name properties.parent_id, one of your grids)"
        )


def need_camera(session: Session, p: Principal, code: str) -> None:
    """A camera event from a person (not the feed) names a camera in the caller's grids (404)."""
    if p.role == "camera_feed" or grid_scope(session, p) is None:
        return  # the video-analytics system posts for every camera
    grid_id = session.scalar(text("SELECT grid_id FROM camera WHERE code = :c"), {"c": code[:80]})
    _need(in_scope(session, p, grid_id), f"camera {code}")


def body_grids(session: Session, p: Principal, args: dict[str, Any]) -> None:
    """Every grid named in ``ids`` must be the caller's."""
    ids = (args.get("_body") or {}).get("ids")
    if isinstance(ids, list):
        for raw in ids:
            gid = _int_or_none(raw)
            if gid is not None:
                _need(in_scope(session, p, gid), f"grid {gid}")


def point_member_arg(session: Session, p: Principal, args: dict[str, Any]) -> None:
    """Require a party member whose ledger the caller may read (404 otherwise)."""
    from app.services.points import member_visible

    _need(member_visible(session, p, args["member_id"]), f"party member {args['member_id']}")


def point_entry_arg(session: Session, p: Principal, args: dict[str, Any]) -> None:
    """Require a point entry of a member the caller answers for (404 otherwise)."""
    from app.services.points import entry_member, member_visible

    member = entry_member(session, args["entry_id"])
    _need(
        member is not None and member_visible(session, p, member), f"point entry {args['entry_id']}"
    )


def service_point_arg(session: Session, p: Principal, args: dict[str, Any]) -> None:
    """Require a service point in the caller's grids (404 otherwise)."""
    grid = session.execute(
        text("SELECT grid_id FROM service_point WHERE id = :p"), {"p": args["point_id"]}
    ).first()
    _need(
        grid is not None and in_scope(session, p, grid.grid_id), f"service point {args['point_id']}"
    )


PUBLIC = Rule(EVERYONE)

RULES: dict[str, Rule] = {
    # pages and assets
    "static": PUBLIC,
    "vendor.asset": PUBLIC,
    "emap.favicon": PUBLIC,
    "emap.index": Rule(STAFF),
    "emap.emap": Rule(STAFF),
    "emap.home": Rule(STAFF),
    "emap.labels": Rule(STAFF),
    "emap.pick": Rule(STAFF),
    "tiles.tile": Rule(STAFF),
    "basemap.archive": Rule(STAFF),
    "basemap.tile": Rule(STAFF),
    "auth_pages.login_page": PUBLIC,
    "auth_pages.login_submit": PUBLIC,
    "auth_pages.logout_page": PUBLIC,
    "auth_pages.users_page": Rule(ADMIN),
    "auth_pages.audit_page": Rule(ADMIN),
    "case_pages.desk": Rule(SUPERVISORS | {"department"}),
    "case_pages.worker": Rule(STAFF),
    "case_pages.track": PUBLIC,
    "case_pages.kpi": Rule(SUPERVISORS),
    # accounts and audit
    "auth_api.login": PUBLIC,
    "auth_api.logout": PUBLIC,
    "auth_api.me": PUBLIC,
    "auth_api.password": Rule(STAFF),
    "auth_api.list_users": Rule(ADMIN),
    "auth_api.create_user": Rule(ADMIN),
    "auth_api.update_user": Rule(ADMIN),
    "auth_api.end_sessions": Rule(ADMIN),
    "auth_api.audit_log": Rule(ADMIN),
    "auth_api.audit_export": Rule(ADMIN),
    # grids
    "grids_api.list_grids": Rule(STAFF),
    "grids_api.get_grid": Rule(STAFF, grid_or_outline_arg()),
    "grids_api.grid_households": Rule(FIELD, grid_arg()),
    "personal_api.household": Rule(FIELD, household_arg()),
    "personal_api.reveal_household": Rule(FIELD, household_arg()),
    "personal_api.reveal_case": Rule(STAFF, case_arg()),
    "grid_edit_api.create": Rule(EDITORS, body_parent),
    "grid_edit_api.patch": Rule(EDITORS, grid_arg()),
    "grid_edit_api.remove": Rule(EDITORS, grid_arg()),
    "grid_edit_api.split": Rule(EDITORS, grid_arg()),
    "grid_edit_api.merge": Rule(EDITORS, body_grids),
    "grid_edit_api.integrity": Rule(SUPERVISORS, grid_arg()),
    "grid_edit_api.history": Rule(SUPERVISORS, grid_arg()),
    "grid_edit_api.changes": Rule(SUPERVISORS),
    "grid_edit_api.undo": Rule(EDITORS, change_arg),
    "partition_api.partition": Rule(EDITORS, grid_arg()),
    "partition_api.patches": Rule(EDITORS, grid_arg()),
    # places, coverage, import / export
    "places_api.service_points": Rule(STAFF),
    "places_api.cameras": Rule(STAFF),
    "coverage_api.report": Rule(FIELD),
    "coverage_api.uncovered": Rule(SUPERVISORS),
    "coverage_api.circles": Rule(FIELD),
    "coverage_api.presets": Rule(STAFF),
    "coverage_api.recommend": Rule(SUPERVISORS),
    "coverage_api.accept": Rule(EDITORS),
    "transfer_api.import_upload": Rule(EDITORS),
    # a job and the held records are their creator's (the administrator sees all): 404 else
    "import_jobs_api.create_job": Rule(EDITORS),
    "import_jobs_api.get_job": Rule(EDITORS),
    "import_jobs_api.held": Rule(EDITORS),
    "transfer_api.export_download": Rule(SUPERVISORS),
    # locate and override areas
    "locate_api.locate": Rule(FIELD),
    "locate_api.neighbours": Rule(FIELD),
    "locate_api.batch": Rule(EDITORS),
    "overrides_api.list_areas": Rule(STAFF),
    "overrides_api.keepers": Rule(EDITORS),
    "overrides_api.create_area": Rule(EDITORS),
    "overrides_api.get_area": Rule(STAFF, area_arg(whole=False)),
    "overrides_api.update_area": Rule(EDITORS, area_arg(whole=True)),
    "overrides_api.delete_area": Rule(EDITORS, area_arg(whole=True)),
    # cases
    "cases_api.create_case": Rule(EVERYONE - {"camera_feed"}),
    "cases_api.list_cases": Rule(STAFF),
    "cases_api.workflow": Rule(STAFF),
    "cases_api.get_case": Rule(STAFF, case_arg()),
    "cases_api.duplicates": Rule(STAFF, case_arg()),
    "cases_api.act": Rule(STAFF, case_arg()),
    "cases_api.photo": Rule(STAFF, photo_arg),
    "cases_api.export": Rule(SUPERVISORS),
    "cases_api.kpis": Rule(SUPERVISORS),
    "cases_api.sweep": Rule(EDITORS),
    "cases_api.public_case": PUBLIC,
    "cases_api.rate": PUBLIC,
    "cases_api.public_photo": PUBLIC,
    "cases_api.camera_event": Rule(EDITORS | {"camera_feed"}),
    "cases_api.case_categories": PUBLIC,
    "cases_api.get_settings": Rule(STAFF),
    "cases_api.put_settings": Rule(ADMIN),  # global: every street's deadlines and windows
    "cases_api.calendar_days": Rule(STAFF),
    "cases_api.deadline": Rule(STAFF),
    # Open311 GeoReport v2: residents' clients report and read by id; the list is for staff.
    "open311.services": PUBLIC,
    "open311.post_request": PUBLIC,
    "open311.get_requests": PUBLIC,
    "open311.get_request": PUBLIC,
    "open311.discovery": PUBLIC,
    # the 一张图 overview, the ledgers (台账) and a resident's report page
    "overview_pages.overview": Rule(SUPERVISORS),
    "overview_pages.ledgers_index": Rule(FIELD),
    "overview_pages.households": Rule(FIELD),
    "overview_pages.people": Rule(FIELD - {"party_member"}),
    "overview_pages.workers": Rule(SUPERVISORS),
    "overview_pages.points": Rule(FIELD),
    "overview_pages.cameras": Rule(FIELD),
    "overview_pages.report": PUBLIC,
    "overview_pages.report_basemap": PUBLIC,  # roads, buildings, water only
    "overview_api.overview": Rule(SUPERVISORS),
    "overview_api.households": Rule(FIELD),
    "overview_api.people": Rule(FIELD - {"party_member"}),
    "overview_api.workers": Rule(SUPERVISORS),
    "overview_api.service_points": Rule(FIELD),
    "overview_api.cameras": Rule(FIELD),
    # the search box (every kind held to the caller's grids inside the service)
    "search_api.search": Rule(STAFF),
    # field work: visits, their plan and coverage, check-ins (personal data of worker and household)
    "visits_api.create_visit": Rule(WORKERS),
    "visits_api.list_visits": Rule(FIELD_READERS),
    "visits_api.get_visit": Rule(FIELD_READERS, visit_arg()),
    "visits_api.report_case": Rule(WORKERS, visit_arg()),
    "visits_api.coverage": Rule(FIELD_READERS),
    "visits_api.due": Rule(WORKERS),
    "visits_api.get_settings": Rule(FIELD_READERS),
    "visits_api.put_settings": Rule(ADMIN),
    "visits_api.check_in": Rule(WORKERS),
    "visits_api.checkins": Rule(FIELD_READERS),
    "visits_api.overdue_map": Rule(FIELD_READERS),
    "visit_pages.visits": Rule(WORKERS),
    # patrols and tracks: the worker's own; read by the chiefs over them and the centre
    "patrols_api.start": Rule(WORKERS),
    "patrols_api.positions": Rule(WORKERS, patrol_arg()),
    "patrols_api.stop": Rule(WORKERS, patrol_arg()),
    "patrols_api.list_patrols": Rule(FIELD_READERS),
    "patrols_api.get_patrol": Rule(FIELD_READERS, patrol_arg()),
    "patrols_api.coverage": Rule(FIELD_READERS),
    "patrols_api.day_map": Rule(FIELD_READERS),
    "patrols_api.field_kpis": Rule(FIELD_READERS),
    # points ledgers: a member their own, chiefs their grids', the centre its street's
    "points_api.list_rules": Rule(FIELD),
    "points_api.save_rule": Rule(EDITORS),
    "points_api.propose_entry": Rule(frozenset({"party_member", "grid_chief", "micro_chief"})),
    "points_api.review_entry": Rule(SUPERVISORS, point_entry_arg),
    "points_api.pending_entries": Rule(SUPERVISORS),
    "points_api.member_ledger": Rule(FIELD, point_member_arg),
    "points_api.household_ledger": Rule(FIELD, household_arg()),
    "points_api.household_entry": Rule(SUPERVISORS, household_arg()),
    "points_api.exchange": Rule(SUPERVISORS, household_arg()),
    "points_api.ranking": Rule(FIELD),
    "points_pages.points": Rule(FIELD),
    "points_api.sync": Rule(EDITORS),
    "points_api.get_settings": Rule(SUPERVISORS),
    "points_api.put_settings": Rule(EDITORS),
    # a village's public ranking: no sign-in, rate-limited, only what the village publishes
    "points_pages.public": PUBLIC,
    # star ratings (评星定级): the grid chief adjusts (not the micro-grid's own chief), the
    # whole city's centre closes a quarter, the centre exports allowances and inspects points
    "points_pages.stars": Rule(FIELD),
    "stars_api.ratings": Rule(FIELD),
    "stars_api.adjust": Rule(frozenset({"admin", "centre", "grid_chief"}), grid_arg()),
    "stars_api.history": Rule(FIELD, grid_arg()),
    "stars_api.close": Rule(EDITORS),
    "stars_api.export": Rule(EXPORTERS),
    "stars_api.stars_map": Rule(FIELD),
    "stars_api.service_points": Rule(FIELD),
    "stars_api.rate_service_point": Rule(EDITORS, service_point_arg),
    # departments' own grids (多网合一): a centre its street's, a department its own
    "networks_api.list_networks": Rule(NETWORK_READERS),
    "networks_api.import_network": Rule(EDITORS),
    "networks_api.get_network": Rule(NETWORK_READERS, network_arg()),
    "networks_api.mismatch": Rule(NETWORK_READERS, network_arg()),
    "networks_api.proposal": Rule(NETWORK_READERS, network_arg()),
    "networks_api.commit": Rule(NETWORK_READERS, network_arg()),
    "networks_api.category_network": Rule(ADMIN),  # categories are city-wide
    "network_pages.networks": Rule(EDITORS),
    # the notice board (网格公示牌) of a grid to print, and how it shows phones
    "notice_pages.notice_pdf": Rule(FIELD, grid_arg()),
    "notice_pages.notice_png": Rule(FIELD, grid_arg()),
    # the networks one sees (policy.network_visible's rule, applied in the query)
    "notice_pages.network_tile": Rule(NETWORK_READERS),
    # a worker of the caller's grids (404 else, checked in the view)
    "notice_api.worker_photo": Rule(EDITORS),
    "notice_api.notice_settings": Rule(SUPERVISORS, grid_arg()),
    # the API description
    "openapi.openapi_document": PUBLIC,
}


def rule_for(endpoint: str | None) -> Rule | None:
    """Return the rule of an endpoint; None means the endpoint has none (refused)."""
    if endpoint is None:
        return None
    return RULES.get(endpoint)


def authorize(
    session: Callable[[], Session], p: Principal, endpoint: str, view_args: dict[str, Any]
) -> None:
    """Raise Unauthenticated / Forbidden / NotFound unless ``p`` may call ``endpoint``.

    ``session`` gives the request's session; it is asked for only when a record is checked.
    """
    rule = rule_for(endpoint)
    if rule is None:
        raise Forbidden(f"{endpoint}: no access rule is declared for this endpoint")
    if p.role not in rule.roles:
        if not p.authenticated:
            raise Unauthenticated("请先登录 / sign in first")
        from app.models.auth import USER_ROLE_NAMES

        raise Forbidden(
            f"{USER_ROLE_NAMES.get(p.role, p.role)}角色无权执行此操作 / the role '{p.role}' may not do this"
        )
    if rule.check is not None:
        rule.check(session(), p, view_args)

"""Ledgers (台账): paged, sorted, filtered lists of households, population by grid, workers and
party members, service points and cameras — each held to the caller's grids.

Names and phones of households are masked here (full values only through the household's
``reveal`` call); sensitive tags are listed and filtered only for those allowed to see them.
Every list answers ``{"items", "total", "limit", "offset", "sort", "order"}``; sorting is by a
named column of a fixed list, then by id, so pages never overlap.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth.policy import Forbidden
from app.errors import BadParameter, NotFound
from app.models.grid import LEVEL_NAMES
from app.models.people import ROLE_NAMES, SENSITIVE_TAGS
from app.models.places import CAMERA_KINDS, SERVICE_POINT_KINDS
from app.privacy import mask_name, mask_phone
from app.services import grid_tree

# What the population ledger counts of each household: the columns the index on the grid
# carries (``ix_household_grid_id``, migration 0026), so that a page of grids is counted from
# the index alone.
HH_COLUMNS = "h.grid_id, h.people, h.linked_member_id, h.tags"
# The coarsest zoom of ``household_cell`` (revision 0015): per leaf grid, fewest rows.
CELL_ZOOM = 10
POINT_STATUSES = {"active": "在用", "planned": "规划", "closed": "停用"}

# Sortable columns of each ledger: name in the request -> SQL expression.
SORTS: dict[str, dict[str, str]] = {
    "households": {
        "address": "h.address",
        "grid": "g.code",
        "people": "h.people",
        "id": "h.id",
    },
    "people": {
        "code": "g.code",
        "name": "g.name",
        "households": "households",
        "people": "people",
        "tagged": "tagged",
    },
    "workers": {
        "code": "w.code",
        "name": "w.name",
        "households": "linked_households",
        "on_duty": "w.on_duty",
    },
    "service_points": {
        "name": "s.name",
        "kind": "s.kind",
        "radius": "s.radius_m",
        "status": "s.status",
        "grid": "g.code",
    },
    "cameras": {"code": "c.code", "name": "c.name", "kind": "c.kind", "grid": "g.code"},
}
DEFAULT_SORT = {
    "households": "address",
    "people": "code",
    "workers": "code",
    "service_points": "name",
    "cameras": "code",
}
ID_COLUMN = {
    "households": "h.id",
    "people": "g.id",
    "workers": "w.id",
    "service_points": "s.id",
    "cameras": "c.id",
}


def _order(kind: str, sort: str | None, order: str | None) -> tuple[str, str, str]:
    sort = sort or DEFAULT_SORT[kind]
    if sort not in SORTS[kind]:
        raise BadParameter("sort", f"排序字段 '{sort}' 无效，可选：{'、'.join(SORTS[kind])}")
    order = (order or "asc").lower()
    if order not in ("asc", "desc"):
        raise BadParameter("order", f"排序方向 '{order}' 无效，可选：asc、desc")
    nulls = "NULLS LAST" if order == "asc" else "NULLS FIRST"
    return (
        f"{SORTS[kind][sort]} {order.upper()} {nulls}, {ID_COLUMN[kind]} {order.upper()}",
        sort,
        order,
    )


# Each selected grid (``top``) with every current grid below it.
_DOWN = grid_tree.descendants_cte(
    "down", "SELECT id AS top, id FROM sel", key="top", union_all=True
)


def subtree(session: Session, grid_id: int) -> list[int]:
    """Return a current grid and every grid below it."""
    return sorted(grid_tree.subtree_ids(session, [grid_id], current=True, current_root=True))


def grid_filter(
    session: Session, scope: frozenset[int] | None, grid_id: int | None
) -> list[int] | None:
    """Return the grids a ledger covers: the scope, narrowed to ``grid_id``'s subtree (404 if
    that grid is not the caller's); None: every grid."""
    if grid_id is None:
        return None if scope is None else sorted(scope)
    if scope is not None and grid_id not in scope:
        raise NotFound(f"网格 {grid_id} 不存在或不在您的管辖范围内", param="grid")
    ids = subtree(session, grid_id)
    if not ids:
        raise NotFound(f"网格 {grid_id} 不存在", param="grid")
    return ids if scope is None else sorted(set(ids) & scope)


def check_tag(tag: str | None, with_tags: bool) -> str | None:
    """Check a tag filter: a known tag, asked for by one allowed to see tags."""
    if tag is None:
        return None
    if not with_tags:
        raise Forbidden("您的角色无权按敏感标签筛选 / the role may not filter by sensitive tags")
    if tag not in SENSITIVE_TAGS:
        raise BadParameter("tag", f"未知标签 '{tag}'，可选：{'、'.join(SENSITIVE_TAGS)}")
    return tag


def _page(
    rows: list[Any] | int,
    items: list[dict[str, Any]],
    limit: int,
    offset: int,
    sort: str,
    order: str,
) -> dict[str, Any]:
    """A page of a ledger; ``rows``: the rows (each with the ``total``) or the total itself."""
    if isinstance(rows, int):
        total = rows
    else:
        total = rows[0].total if rows else 0
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "sort": sort,
        "order": order,
    }


def _no_jit(session: Session) -> None:
    """No JIT compilation for this transaction's ledger queries: the planner's estimates for a
    tree of grids run high, and compiling costs a second where a page takes milliseconds."""
    session.execute(text("SELECT set_config('jit', 'off', true)"))


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _one_of(
    where: list[str],
    params: dict[str, Any],
    column: str,
    name: str,
    value: str | None,
    allowed: Any,
    what: str,
) -> None:
    """Narrow to ``column = value`` when a value is given, after checking it is one of
    ``allowed`` (a 400 naming the parameter and the choices otherwise)."""
    if value is None:
        return
    if value not in allowed:
        raise BadParameter(name, f"未知{what} '{value}'，可选：{'、'.join(allowed)}")
    where.append(f"{column} = :{name}")
    params[name] = value


def households(
    session: Session,
    grids: list[int] | None,
    *,
    linked_member_id: int | None = None,
    with_tags: bool = False,
    tag: str | None = None,
    linked: bool | None = None,
    q: str | None = None,
    sort: str | None = None,
    order: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """The household ledger: address, grid, head count, masked head name and phone, the linked
    party member, and (for those allowed) the sensitive tags."""
    order_sql, sort, order = _order("households", sort, order)
    _no_jit(session)
    where, params = ["TRUE"], {}
    if grids is not None:
        where.append("h.grid_id = ANY(CAST(:grids AS integer[]))")
        params["grids"] = grids
    if linked_member_id is not None:
        where.append("h.linked_member_id = :member")
        params["member"] = linked_member_id
    if tag:
        where.append(":tag = ANY(h.tags)")
        params["tag"] = tag
    if linked is not None:
        where.append("h.linked_member_id IS NOT NULL" if linked else "h.linked_member_id IS NULL")
    if q:
        where.append("(h.address ILIKE :q OR h.building ILIKE :q)")
        params["q"] = _like(q)
    # The page's ids first, then their rows: in address order (the default) the ids of a
    # scope come from an index-only scan of (address, id) with the grid beside them, so that
    # the households of other grids skipped on the way are never read from the table.
    by_grid = " JOIN grid g ON g.id = h.grid_id" if sort == "grid" else ""
    # No filter but the grids: the total from the kept totals, in the same statement.
    kept = len(where) == 1 + (grids is not None)
    kept_total = f", ({household_total_sql(grids)}) AS kept_total" if kept else ""
    rows = session.execute(
        text(
            f"""SELECT h.id, h.address, h.building, h.unit, h.room, h.people, h.tags,
                       h.head_name, h.head_phone, g.id AS grid_id, g.code AS grid_code,
                       g.name AS grid_name, m.name AS member_name{kept_total}
                FROM (SELECT h.id FROM household h{by_grid}
                      WHERE {" AND ".join(where)}
                      ORDER BY {order_sql} LIMIT :limit OFFSET :offset) page
                JOIN household h ON h.id = page.id
                JOIN grid g ON g.id = h.grid_id
                LEFT JOIN worker m ON m.id = h.linked_member_id
                ORDER BY {order_sql}"""
        ),
        {**params, "limit": limit, "offset": offset},
    ).all()
    if len(rows) < limit and (rows or offset == 0):  # the last page: the total is known
        total = offset + len(rows)
    elif kept:  # no filter but the grids: the kept totals
        total = int(rows[0].kept_total) if rows else household_total(session, grids)
    else:
        total = session.scalar(
            text(f"SELECT count(*) FROM household h WHERE {' AND '.join(where)}"), params
        )
    items = []
    for r in rows:
        item = {
            "id": r.id,
            "address": r.address,
            "building": r.building,
            "unit": r.unit,
            "room": r.room,
            "people": r.people,
            "grid": {"id": r.grid_id, "code": r.grid_code, "name": r.grid_name},
            "head_name": mask_name(r.head_name),
            "head_phone": mask_phone(r.head_phone),
            "linked_member": r.member_name,
        }
        if with_tags:
            item["tags"] = [{"code": t, "name": SENSITIVE_TAGS.get(t, t)} for t in (r.tags or [])]
        items.append(item)
    return _page(total, items, limit, offset, sort, order)


def household_total(session: Session, grids: list[int] | None) -> int:
    """How many households ``grids`` (None: every grid) hold, from the households per cell and
    leaf grid the e-map's density tiles keep exact (``household_cell``, by triggers): a few
    rows a grid at the coarsest zoom instead of a count over the households."""
    return int(
        session.scalar(
            text(household_total_sql(grids)), {"grids": grids} if grids is not None else {}
        )
    )


def household_total_sql(grids: list[int] | None) -> str:
    """The SQL of ``household_total`` (``:grids`` the list of grids when there is one)."""
    where = "grid_id = 0" if grids is None else "grid_id = ANY(CAST(:grids AS integer[]))"
    return (
        f"SELECT coalesce(sum(households), 0) FROM household_cell WHERE z = {CELL_ZOOM} AND {where}"
    )


def population(
    session: Session,
    grids: list[int] | None,
    *,
    level: int = 4,
    with_tags: bool = False,
    tag: str | None = None,
    sort: str | None = None,
    order: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """The population ledger by grid: for every current grid of ``level`` among ``grids``, its
    households and people (its own and those below it), the households linked to a party member
    and, for those allowed, the households of each sensitive tag (``tag``: count only those)."""
    order_sql, sort, order = _order("people", sort, order)
    _no_jit(session)
    if not with_tags and sort == "tagged":
        raise BadParameter("sort", "您的角色无权按敏感标签排序")
    where, params = ["g.valid_to IS NULL", "g.level = :level"], {"level": level}
    if grids is not None:
        where.append("g.id = ANY(CAST(:grids AS integer[]))")
        params["grids"] = grids
    page = {"limit": limit, "offset": offset}
    total: int | None = None
    # The page's grids first, so that only their households are counted: by code or name from
    # the grids alone, by households from the grids' kept household counts, by people from the
    # kept totals per leaf grid (``household_cell``). A tag filter or the tagged count as the
    # order counts every grid's households.
    if sort in ("code", "name"):
        ids_sql = (
            f"SELECT g.id FROM grid g WHERE {' AND '.join(where)} ORDER BY {order_sql} "
            "LIMIT :limit OFFSET :offset"
        )
    elif sort == "households" and not tag:
        # The kept counts (``grid.household_count``, written by every import and grid edit):
        # a page read from the index on (level, household_count, id).
        direction = order.upper()
        ids_sql = (
            f"SELECT g.id FROM grid g WHERE {' AND '.join(where)} "
            f"ORDER BY g.household_count {direction}, g.id {direction} "
            "LIMIT :limit OFFSET :offset"
        )
    elif sort == "people" and not tag:
        # Every grid's cells in one pass; a caller's grids each through the cells' key.
        cells = (
            f"LEFT JOIN household_cell c ON c.grid_id = d.id AND c.z = {CELL_ZOOM}"
            if grids is None
            else "LEFT JOIN LATERAL (SELECT households, people FROM household_cell c "
            f"WHERE c.grid_id = d.id AND c.z = {CELL_ZOOM} OFFSET 0) c ON TRUE"
        )
        ids_sql = f"""WITH sel AS (SELECT g.id FROM grid g WHERE {" AND ".join(where)}),
                    {_DOWN},
                    agg AS (SELECT d.top, coalesce(sum(c.households), 0) AS households,
                                   coalesce(sum(c.people), 0) AS people
                            FROM down d {cells}
                            GROUP BY d.top)
                    SELECT g.id FROM agg JOIN grid g ON g.id = agg.top
                    ORDER BY {order_sql} LIMIT :limit OFFSET :offset"""
    else:
        ids_sql = None
    ids: list[int] | None = None
    if ids_sql is not None:
        # The page's ids and the total in one statement (one round trip).
        chosen = session.execute(
            text(
                f"SELECT ARRAY({ids_sql}) AS ids, "
                f"(SELECT count(*) FROM grid g WHERE {' AND '.join(where)}) AS total"
            ),
            {**params, **page},
        ).one()
        ids, total = list(chosen.ids), int(chosen.total)
        # The page's grids alone, as a list (a filter of the grids by the list would be planned
        # as a scan of every grid; their level and scope were those of their choice).
        selection = "SELECT unnest(CAST(:page AS integer[])) AS id"
        params = {"page": list(ids)}
        page = {"limit": limit, "offset": 0}
    else:
        selection = f"SELECT g.id FROM grid g WHERE {' AND '.join(where)}"
    hh_where = ""
    if tag:
        hh_where = "WHERE :tag = ANY(h.tags)"
        params["tag"] = tag
    tag_cols = ",\n".join(
        f"count(h.grid_id) FILTER (WHERE '{code}' = ANY(h.tags)) AS tag_{code}"
        for code in SENSITIVE_TAGS
    )
    if ids is None:  # every grid's households: one pass over them
        hh_join = (
            f"LEFT JOIN (SELECT {HH_COLUMNS} FROM household h {hh_where}) h ON h.grid_id = d.id"
        )
    else:  # a page of grids: the households of each through the index on their grid
        hh_and = hh_where.replace("WHERE", "AND")
        # (the columns counted are those the index on the grid carries: an index-only scan)
        hh_join = (
            f"LEFT JOIN LATERAL (SELECT {HH_COLUMNS} FROM household h "
            f"WHERE h.grid_id = d.id {hh_and} OFFSET 0) h ON TRUE"
        )
    rows = session.execute(
        text(
            f"""WITH sel AS ({selection}),
                {_DOWN},
                agg AS (SELECT d.top, count(h.grid_id) AS households,
                               coalesce(sum(h.people), 0) AS people,
                               count(h.grid_id) FILTER (WHERE h.linked_member_id IS NOT NULL) AS linked,
                               count(h.grid_id) FILTER (WHERE cardinality(h.tags) > 0) AS tagged,
                               {tag_cols}
                        FROM down d {hh_join}
                        GROUP BY d.top)
                SELECT g.id, g.code, g.name, g.level, p.name AS parent_name, a.*,
                       count(*) OVER () AS total
                FROM agg a JOIN grid g ON g.id = a.top LEFT JOIN grid p ON p.id = g.parent_id
                ORDER BY {order_sql} LIMIT :limit OFFSET :offset"""
        ),
        {**params, **page},
    ).all()
    items = []
    for r in rows:
        item = {
            "id": r.id,
            "code": r.code,
            "name": r.name,
            "level": r.level,
            "level_name": LEVEL_NAMES.get(r.level, str(r.level)),
            "parent": r.parent_name,
            "households": r.households,
            "people": int(r.people),
            "linked_households": r.linked,
        }
        if with_tags:
            item["tagged"] = r.tagged
            item["tags"] = {code: getattr(r, f"tag_{code}") for code in SENSITIVE_TAGS}
        items.append(item)
    return _page(rows if total is None else total, items, limit, offset, sort, order)


def workers(
    session: Session,
    grids: list[int] | None,
    *,
    role: str | None = None,
    on_duty: bool | None = None,
    q: str | None = None,
    sort: str | None = None,
    order: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """The worker and party-member ledger: each person with an assignment in ``grids``, the
    assignments (grid and role), the households linked to him (in ``grids``); phones masked."""
    order_sql, sort, order = _order("workers", sort, order)
    a_where, params = ["TRUE"], {}
    if grids is not None:
        a_where.append("a.grid_id = ANY(CAST(:grids AS integer[]))")
        params["grids"] = grids
    _one_of(a_where, params, "a.role", "role", role, ROLE_NAMES, "岗位")
    w_where = ["TRUE"]
    if on_duty is not None:
        w_where.append("w.on_duty" if on_duty else "NOT w.on_duty")
    if q:
        w_where.append("(w.name ILIKE :q OR w.code ILIKE :q)")
        params["q"] = _like(q)
    hh_scope = "AND h.grid_id = ANY(CAST(:grids AS integer[]))" if grids is not None else ""
    rows = session.execute(
        text(
            f"""WITH sel AS (SELECT DISTINCT a.worker_id FROM grid_assignment a
                             JOIN grid g ON g.id = a.grid_id AND g.valid_to IS NULL
                             WHERE {" AND ".join(a_where)})
                SELECT w.id, w.code, w.name, w.phone, w.on_duty,
                       (SELECT count(*) FROM household h WHERE h.linked_member_id = w.id {hh_scope})
                           AS linked_households,
                       count(*) OVER () AS total
                FROM worker w JOIN sel ON sel.worker_id = w.id
                WHERE {" AND ".join(w_where)}
                ORDER BY {order_sql} LIMIT :limit OFFSET :offset"""
        ),
        {**params, "limit": limit, "offset": offset},
    ).all()
    ids = [r.id for r in rows]
    assignments: dict[int, list[dict[str, Any]]] = {}
    if ids:
        a_scope = "AND a.grid_id = ANY(CAST(:grids AS integer[]))" if grids is not None else ""
        for a in session.execute(
            text(
                f"""SELECT a.worker_id, a.role, g.id, g.code, g.name FROM grid_assignment a
                    JOIN grid g ON g.id = a.grid_id AND g.valid_to IS NULL
                    WHERE a.worker_id = ANY(CAST(:ids AS integer[])) {a_scope} ORDER BY g.code, a.role"""
            ),
            {"ids": ids, **({"grids": grids} if grids is not None else {})},
        ):
            assignments.setdefault(a.worker_id, []).append(
                {
                    "role": a.role,
                    "role_name": ROLE_NAMES.get(a.role, a.role),
                    "grid": {"id": a.id, "code": a.code, "name": a.name},
                }
            )
    items = [
        {
            "id": r.id,
            "code": r.code,
            "name": r.name,
            "phone": mask_phone(r.phone),
            "on_duty": r.on_duty,
            "assignments": assignments.get(r.id, []),
            "linked_households": r.linked_households,
        }
        for r in rows
    ]
    return _page(rows, items, limit, offset, sort, order)


def service_points(
    session: Session,
    grids: list[int] | None,
    *,
    kind: str | None = None,
    status: str | None = None,
    q: str | None = None,
    sort: str | None = None,
    order: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """The service-point ledger: name, kind, status, radius, grid, address, position."""
    order_sql, sort, order = _order("service_points", sort, order)
    where, params = ["TRUE"], {}
    if grids is not None:
        where.append("s.grid_id = ANY(CAST(:grids AS integer[]))")
        params["grids"] = grids
    _one_of(where, params, "s.kind", "kind", kind, SERVICE_POINT_KINDS, "阵地类型")
    _one_of(where, params, "s.status", "status", status, POINT_STATUSES, "状态")
    if q:
        where.append("(s.name ILIKE :q OR s.address ILIKE :q)")
        params["q"] = _like(q)
    rows = session.execute(
        text(
            f"""SELECT s.id, s.name, s.kind, s.status, s.radius_m, s.address,
                       ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
                       g.id AS grid_id, g.code AS grid_code, g.name AS grid_name,
                       count(*) OVER () AS total
                FROM service_point s LEFT JOIN grid g ON g.id = s.grid_id
                WHERE {" AND ".join(where)}
                ORDER BY {order_sql} LIMIT :limit OFFSET :offset"""
        ),
        {**params, "limit": limit, "offset": offset},
    ).all()
    items = [
        {
            "id": r.id,
            "name": r.name,
            "kind": r.kind,
            "kind_name": SERVICE_POINT_KINDS.get(r.kind, r.kind),
            "status": r.status,
            "status_name": POINT_STATUSES.get(r.status, r.status),
            "radius_m": r.radius_m,
            "address": r.address,
            "point": {"lon": round(r.lon, 7), "lat": round(r.lat, 7)},
            "grid": {"id": r.grid_id, "code": r.grid_code, "name": r.grid_name}
            if r.grid_id
            else None,
        }
        for r in rows
    ]
    return _page(rows, items, limit, offset, sort, order)


def cameras(
    session: Session,
    grids: list[int] | None,
    *,
    kind: str | None = None,
    analytics: bool | None = None,
    q: str | None = None,
    sort: str | None = None,
    order: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """The camera ledger: code, name, kind, video analytics, grid, position."""
    order_sql, sort, order = _order("cameras", sort, order)
    where, params = ["TRUE"], {}
    if grids is not None:
        where.append("c.grid_id = ANY(CAST(:grids AS integer[]))")
        params["grids"] = grids
    _one_of(where, params, "c.kind", "kind", kind, CAMERA_KINDS, "探头类型")
    if analytics is not None:
        where.append("c.analytics" if analytics else "NOT c.analytics")
    if q:
        where.append("(c.code ILIKE :q OR c.name ILIKE :q)")
        params["q"] = _like(q)
    rows = session.execute(
        text(
            f"""SELECT c.id, c.code, c.name, c.kind, c.analytics,
                       ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
                       g.id AS grid_id, g.code AS grid_code, g.name AS grid_name,
                       count(*) OVER () AS total
                FROM camera c LEFT JOIN grid g ON g.id = c.grid_id
                WHERE {" AND ".join(where)}
                ORDER BY {order_sql} LIMIT :limit OFFSET :offset"""
        ),
        {**params, "limit": limit, "offset": offset},
    ).all()
    items = [
        {
            "id": r.id,
            "code": r.code,
            "name": r.name,
            "kind": r.kind,
            "kind_name": CAMERA_KINDS.get(r.kind, r.kind),
            "analytics": r.analytics,
            "point": {"lon": round(r.lon, 7), "lat": round(r.lat, 7)},
            "grid": {"id": r.grid_id, "code": r.grid_code, "name": r.grid_name}
            if r.grid_id
            else None,
        }
        for r in rows
    ]
    return _page(rows, items, limit, offset, sort, order)


def grid_choices(
    session: Session, scope: frozenset[int] | None, max_level: int = 3
) -> list[dict[str, Any]]:
    """The caller's current grids down to ``max_level``, for a ledger's grid filter."""
    cond = (
        "g.level <= :lvl"
        if scope is None
        else "g.id = ANY(CAST(:scope AS integer[])) AND (g.level <= :lvl OR g.parent_id IS NULL"
        " OR NOT g.parent_id = ANY(CAST(:scope AS integer[])))"
    )
    rows = session.execute(
        text(
            f"""SELECT g.id, g.code, g.name, g.level FROM grid g
                WHERE g.valid_to IS NULL AND {cond}
                ORDER BY g.code LIMIT 3000"""
        ),
        {"lvl": max_level, **({"scope": sorted(scope)} if scope is not None else {})},
    ).all()
    return [{"id": r.id, "code": r.code, "name": r.name, "level": r.level} for r in rows]

"""The search box as served before revision 0026 (trigram indexes only, a misspelt address
looked up among the places of revision 0023): the baseline of ``bench/bench_search.py``, kept
unchanged so that the benchmark compares the search as served with it side by side.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth.policy import Principal, case_scope, grid_scope
from app.errors import BadParameter
from app.models.grid import LEVEL_NAMES
from app.models.people import ROLE_NAMES
from app.models.places import SERVICE_POINT_KINDS
from app.privacy import mask_name
from app.services.cases import STATUS_NAMES

KINDS = ("grid", "household", "worker", "case", "service_point", "camera")
KIND_NAMES = {
    "grid": "网格",
    "household": "住户",
    "worker": "人员",
    "case": "事件",
    "service_point": "服务点",
    "camera": "摄像头",
}
MIN_LENGTH = 2
MAX_LENGTH = 60
MAX_LIMIT = 30
# The most rows of one kind a query ranks: a query found in very many addresses ranks the
# first this many it finds (the user narrows it by typing more).
CANDIDATES = 400
# The most merely similar rows of one kind ranked (all of them, as a rule: a typo of a long
# address leaves a few thousand texts at most above the similarity asked for).
SIMILAR_CANDIDATES = 2000

HOUSEHOLD_TEXT = "household_search_text(h.address, h.building, h.unit, h.room)"


def escape_like(q: str) -> str:
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def normalise(q: str | None) -> str:
    value = " ".join((q or "").split())
    if any(ord(ch) < 32 for ch in value):
        raise BadParameter("q", "含有控制字符 / contains a control character")
    if len(value) < MIN_LENGTH:
        raise BadParameter("q", f"请至少输入{MIN_LENGTH}个字 / at least {MIN_LENGTH} characters")
    if len(value) > MAX_LENGTH:
        raise BadParameter("q", f"不能超过{MAX_LENGTH}个字 / at most {MAX_LENGTH} characters")
    return value


def _strong(table: str, alias: str, exprs: tuple[str, ...], q: str, where: str = "") -> str:
    """The CTE ``strong``: the ids of ``table`` whose texts hold the query (two characters:
    equal it), an index scan capped at ``CANDIDATES``."""
    if len(q) >= 3:
        strong = " OR ".join(f"{e} ILIKE :pat" for e in exprs)
    else:  # two characters make no trigram inside a pattern
        strong = " OR ".join(f"{e} = :q" for e in exprs)
    return f"strong AS (SELECT {alias}.id FROM {table} {alias} WHERE ({strong}){where} LIMIT :cand)"


def _hits(
    table: str,
    alias: str,
    exprs: tuple[str, ...],
    q: str,
    where: str = "",
    fuzzy: tuple[str, ...] | None = None,
) -> str:
    """Two CTEs, ``strong`` and ``hit``: the ids of ``table`` whose texts hold the query (two
    characters: equal it), and — only when there is none — those whose ``fuzzy`` texts (names
    and addresses; codes are matched exactly) resemble it: a typo. Each is an index scan of its
    own, capped at ``CANDIDATES``; the costly similarity scan runs only when nothing holds the
    query."""
    out = _strong(table, alias, exprs, q, where) + ", "
    fuzzy = exprs if fuzzy is None else fuzzy
    if not fuzzy:
        return out + "hit AS (SELECT id FROM strong)"
    similar = " OR ".join(f":q <% {e}" for e in fuzzy)
    return out + (
        f"hit AS (SELECT id FROM strong UNION ALL ("
        f"SELECT {alias}.id FROM {table} {alias} WHERE ({similar}){where} "
        f"AND NOT EXISTS (SELECT 1 FROM strong) LIMIT :similar_cand))"
    )


def similarity_threshold(q: str) -> float:
    """How similar a text must be to be suggested. One character wrong inside a query of n
    characters that is found inside a longer text costs about six of its n + 1 padded trigrams
    (three around the wrong character, two word-start ones that cannot match inside a text, and
    the extent's own); a little less than that is asked, within 0.45–0.75 (the higher, the
    fewer index entries the scan reads)."""
    n = len(q.replace(" ", ""))
    return round(max(0.45, min(0.75, (n - 6.5) / (n + 1))), 3)


def _threshold(session: Session, value: float) -> None:
    """Set the word similarity the trigram index asks for (``<%``), for this transaction."""
    session.execute(
        text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"), {"t": str(value)}
    )


def _score(*exprs: str) -> str:
    """Rank: equal to the query, then holding it, then by word similarity."""
    parts = []
    for e in exprs:
        parts.append(
            f"(CASE WHEN lower({e}) = lower(:q) THEN 3 WHEN {e} ILIKE :pat THEN 1 ELSE 0 END"
            f" + word_similarity(:q, coalesce({e}, '')))"
        )
    return parts[0] if len(parts) == 1 else "GREATEST(" + ", ".join(parts) + ")"


def _grid_filter(scope: frozenset[int] | None, column: str) -> str:
    return "" if scope is None else f" AND {column} = ANY(:scope_grids)"


def search(
    session: Session,
    p: Principal,
    q: str | None,
    *,
    limit: int = 10,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, Any]:
    """Return ``{"q", "items": [...]}``: the best ``limit`` matches over ``kinds``."""
    q = normalise(q)
    limit = max(1, min(int(limit), MAX_LIMIT))
    scope = grid_scope(session, p)
    params: dict[str, Any] = {
        "q": q,
        "pat": f"%{escape_like(q)}%",
        "k": limit,
        "cand": CANDIDATES,
        "similar_cand": SIMILAR_CANDIDATES,
    }
    if scope is not None:
        params["scope_grids"] = sorted(scope)
    _threshold(session, similarity_threshold(q))
    items: list[dict[str, Any]] = []
    for kind in kinds:
        if kind not in KINDS:
            raise BadParameter("kinds", f"'{kind}' is not one of {', '.join(KINDS)}")
        items += FINDERS[kind](session, p, q, scope, params)
    # Best first; a kind's own order (its tie-breaks) kept among equal scores.
    items.sort(key=lambda i: (-i["score"], KINDS.index(i["kind"])))
    out = []
    for item in items[:limit]:
        item["score"] = round(float(item["score"]), 3)
        item["kind_name"] = KIND_NAMES[item["kind"]]
        out.append(item)
    return {"q": q, "items": out}


def _result(
    kind: str,
    r: Any,
    label: str,
    detail: str,
    *,
    grid_id: int | None,
    opens: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One suggestion: what it is, its text, where it lies and what choosing it opens."""
    return {
        "kind": kind,
        "id": r.id,
        "label": label,
        "detail": detail,
        "lon": r.lon,
        "lat": r.lat,
        "grid_id": grid_id,
        "open": opens or {kind: r.id},
        "score": r.score,
    }


def _grids(
    session: Session, p: Principal, q: str, scope: frozenset[int] | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    if scope is not None and not scope:
        return []
    rows = session.execute(
        text(
            f"""WITH {
                _hits(
                    "grid",
                    "g",
                    ("g.name", "g.code"),
                    q,
                    " AND g.valid_to IS NULL" + _grid_filter(scope, "g.id"),
                    fuzzy=("g.name",),
                )
            },
                top AS (SELECT g.id, g.code, g.name, g.level, {_score("g.name", "g.code")} AS score
                        FROM hit JOIN grid g ON g.id = hit.id ORDER BY score DESC, g.code LIMIT :k)
                SELECT top.*, ST_X(pt) AS lon, ST_Y(pt) AS lat
                FROM top JOIN grid g ON g.id = top.id
                CROSS JOIN LATERAL ST_PointOnSurface(g.geom) pt"""
        ),
        params,
    ).all()
    return [
        _result("grid", r, r.name, f"{LEVEL_NAMES.get(r.level, r.level)} · {r.code}", grid_id=r.id)
        for r in rows
    ]


# A query's unit and room (``1单元101室``, ``101室``): what comes before them names a place.
UNIT_ROOM = re.compile(r"[0-9]+单元.*$|[0-9]+室$")
# The most places whose households are compared with a misspelt query.
PLACE_CANDIDATES = 40


def split_place(q: str) -> tuple[str, str]:
    """A query as (place, unit and room): ``馨园小区1栋1单元101室`` -> (``馨园小区1栋``,
    ``1单元101室``); a query without unit or room is all place."""
    m = UNIT_ROOM.search(q)
    return (q, "") if m is None else (q[: m.start()].strip(), q[m.start() :])


def place_threshold(qp: str) -> float:
    """How similar a place must be to a query's place (``word_similarity``: the trigrams
    shared over those of both, the query and the closest part of the place). One character
    wrong in a place of n characters, inside a longer place name, leaves about
    (n - 5) / (n + 4) of it (its word-start trigrams never match inside); at least 0.2."""
    n = len(qp.replace(" ", ""))
    return round(max(0.2, min(0.6, (n - 5) / (n + 4))), 3)


def _households(
    session: Session, p: Principal, q: str, scope: frozenset[int] | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Households by address. A text holding the query is found by the trigram index of the
    households; a misspelt one in two steps: the places (``search_place``: addresses without
    unit and room, a few per leaf grid) that resemble the query's place, then the households
    of those places that resemble the whole query. Only when no place does are all households
    compared with the query (an address query with a typo in its unit or room). A query of
    Latin letters and digits only (a code, a number) is matched exactly: no address resembles
    one."""
    if p.role not in ("admin", "centre", "grid_chief", "micro_chief", "worker", "party_member"):
        return []
    extra: dict[str, Any] = {}
    if p.role == "party_member":
        where = " AND h.linked_member_id = :me"
        place_where = ""
        extra["me"] = p.worker_id or -1
    elif scope is not None and not scope:
        return []
    else:
        where = _grid_filter(scope, "h.grid_id")
        place_where = _grid_filter(scope, "sp.grid_id")
    qp, qr = split_place(q)
    words = not q.isascii()
    near, hit = "", "hit AS (SELECT id FROM strong)"
    if words and len(qp) >= MIN_LENGTH:
        # Nothing holds the query: the places most like its place, then their households
        # with the unit and room asked for (exactly: a typo there is left to the full scan).
        extra.update(qp=qp, place_cand=PLACE_CANDIDATES, qr=f"%{escape_like(qr)}")
        near = f"""places AS MATERIALIZED (
                    SELECT c.place FROM (
                        SELECT DISTINCT sp.place FROM search_place sp
                        WHERE :qp <% sp.place{place_where} AND NOT EXISTS (SELECT 1 FROM strong)) c
                    ORDER BY word_similarity(:qp, c.place) DESC, c.place LIMIT :place_cand),
                near AS (SELECT h.id FROM places p
                         JOIN search_place sp ON sp.place = p.place{place_where}
                         JOIN household h ON h.grid_id = sp.grid_id
                          AND household_search_place({HOUSEHOLD_TEXT}) = sp.place
                         WHERE {HOUSEHOLD_TEXT} LIKE :qr{where} LIMIT :similar_cand), """
        hit = "hit AS (SELECT id FROM strong UNION ALL SELECT id FROM near)"
    strong = _strong("household", "h", (HOUSEHOLD_TEXT,), q, where) + ", "
    if near:  # the places' index scan asks for the similarity of a place
        _threshold(session, place_threshold(qp))
    rows = _household_rows(session, f"{strong}{near}{hit}", {**params, **extra})
    if near:
        _threshold(session, similarity_threshold(q))
    if not rows and words and (not near or qr):
        # Nothing holds the query, and no place resembles its place or none has its unit and
        # room: every household is compared with the query.
        rows = _household_rows(
            session, _hits("household", "h", (HOUSEHOLD_TEXT,), q, where), {**params, **extra}
        )
    return [
        _result(
            "household",
            r,
            r.label,
            " · ".join(x for x in ("户主 " + (mask_name(r.head_name) or "—"), r.grid_name) if x),
            grid_id=r.grid_id,
        )
        for r in rows
    ]


def _household_rows(session: Session, hits: str, params: dict[str, Any]) -> list[Any]:
    return session.execute(
        text(
            f"""WITH {hits},
                top AS (SELECT h.id, {HOUSEHOLD_TEXT} AS label, {_score(HOUSEHOLD_TEXT)} AS score
                        FROM hit JOIN household h ON h.id = hit.id
                        ORDER BY score DESC, similarity(:q, {HOUSEHOLD_TEXT}) DESC, label, h.id
                        LIMIT :k)
                SELECT top.*, h.head_name, h.grid_id, g.name AS grid_name,
                       ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat
                FROM top JOIN household h ON h.id = top.id JOIN grid g ON g.id = h.grid_id"""
        ),
        params,
    ).all()


def _workers(
    session: Session, p: Principal, q: str, scope: frozenset[int] | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    if p.role == "department" or (scope is not None and not scope):
        return []
    in_scope = "" if scope is None else " AND a.grid_id = ANY(:scope_grids)"
    rows = session.execute(
        text(
            f"""WITH {
                _hits(
                    "worker",
                    "w",
                    ("w.name", "w.code"),
                    q,
                    fuzzy=("w.name",),
                    where=f" AND EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = w.id{in_scope})",
                )
            },
                top AS (SELECT w.id, w.code, w.name, {_score("w.name", "w.code")} AS score
                        FROM hit JOIN worker w ON w.id = hit.id ORDER BY score DESC, w.name LIMIT :k)
                SELECT hit.*, a.role, a.grid_id, g.name AS grid_name, ST_X(pt) AS lon, ST_Y(pt) AS lat
                FROM top hit
                CROSS JOIN LATERAL (
                    SELECT a.role, a.grid_id FROM grid_assignment a JOIN grid g ON g.id = a.grid_id
                    WHERE a.worker_id = hit.id{in_scope}
                    ORDER BY g.level DESC, a.grid_id LIMIT 1) a
                JOIN grid g ON g.id = a.grid_id
                CROSS JOIN LATERAL ST_PointOnSurface(g.geom) pt"""
        ),
        params,
    ).all()
    return [
        _result(
            "worker",
            r,
            r.name,
            " · ".join(x for x in (ROLE_NAMES.get(r.role, r.role), r.grid_name, r.code) if x),
            grid_id=r.grid_id,
            opens={"grid": r.grid_id, "worker": r.id},
        )
        for r in rows
    ]


def _cases(
    session: Session, p: Principal, q: str, scope: frozenset[int] | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    cond, cparams = case_scope(session, p).sql("c")
    if cond == "FALSE":
        return []
    rows = session.execute(
        text(
            f"""WITH {_hits('"case"', "c", ("c.code",), q, f" AND {cond}", fuzzy=())},
                top AS (SELECT c.id, c.code, {_score("c.code")} AS score
                        FROM hit JOIN "case" c ON c.id = hit.id ORDER BY score DESC, c.code DESC LIMIT :k)
                SELECT hit.*, c.status, c.grid_id, cat.name AS category_name,
                       ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
                FROM top hit
                JOIN "case" c ON c.id = hit.id
                JOIN case_category cat ON cat.code = c.category"""
        ),
        {**params, **cparams},
    ).all()
    return [
        _result(
            "case",
            r,
            r.code,
            f"{r.category_name} · {STATUS_NAMES.get(r.status, r.status)}",
            grid_id=r.grid_id,
        )
        for r in rows
    ]


def _service_points(
    session: Session, p: Principal, q: str, scope: frozenset[int] | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    if scope is not None and not scope:
        return []
    rows = session.execute(
        text(
            f"""WITH {_hits("service_point", "s", ("s.name",), q, _grid_filter(scope, "s.grid_id"))}
                SELECT s.id, s.name, s.kind, s.grid_id, s.address, {_score("s.name")} AS score,
                       ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
                FROM service_point s
                WHERE s.id IN (SELECT id FROM hit)
                ORDER BY score DESC, s.name LIMIT :k"""
        ),
        params,
    ).all()
    return [
        _result(
            "service_point",
            r,
            r.name,
            " · ".join(x for x in (SERVICE_POINT_KINDS.get(r.kind, r.kind), r.address) if x),
            grid_id=r.grid_id,
        )
        for r in rows
    ]


def _cameras(
    session: Session, p: Principal, q: str, scope: frozenset[int] | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    if scope is not None and not scope:
        return []
    rows = session.execute(
        text(
            f"""WITH {
                _hits(
                    "camera",
                    "m",
                    ("m.code", "m.name"),
                    q,
                    _grid_filter(scope, "m.grid_id"),
                    fuzzy=("m.name",),
                )
            }
                SELECT m.id, m.code, m.name, m.grid_id, {_score("m.code", "m.name")} AS score,
                       ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat
                FROM camera m
                WHERE m.id IN (SELECT id FROM hit)
                ORDER BY score DESC, m.code LIMIT :k"""
        ),
        params,
    ).all()
    return [_result("camera", r, r.name or r.code, r.code, grid_id=r.grid_id) for r in rows]


FINDERS = {
    "grid": _grids,
    "household": _households,
    "worker": _workers,
    "case": _cases,
    "service_point": _service_points,
    "camera": _cameras,
}

"""The search box: grids, households, workers and party members, cases, service points and
cameras by any part of a name, code or address, forgiving a typo.

The search runs in phases (``search``), each asked only of the kinds that still need it: texts
equal to the query (B-trees on the addresses, names and codes, migration
``0026_search_ledger_speed``), a code-like query's codes from their start (``text_pattern_ops``
B-trees), texts holding the query (``ILIKE '%q%'`` through the trigram indexes of ``0014_search``
from three characters on; two characters: equal to it; a partial address through its places),
and — for a kind where none does — texts resembling it (``q <% text``: the word similarity of
the query to the closest part of a name or address reaches ``similarity_threshold(q)``; codes
are matched exactly). A later phase is skipped once an earlier one found what was meant. A
misspelt address is looked up among the terms of the places first (``search_term``, migration
``0031_search_terms``: the places without their building number, a few thousand for a city),
then among the places (``search_place``, migration ``0023_search_speed``: the addresses
without unit and room), then among their households.
Results are ranked equal first, then containing, then by that similarity, and held to what
the caller may see (``app.auth.policy``): grids, households, workers, service
points and cameras of the caller's grids (a party member: the households linked to him), cases
of its case scope. A suggestion carries no personal data of residents: a household shows its
address, its head's name masked.

Each result has ``kind``, ``label``, ``detail``, ``lon``/``lat`` (a grid: a point inside it),
``grid_id`` and ``open``: what choosing it opens (``{"grid": id}``, ``{"household": id}``,
``{"case": id}``, ``{"service_point": id}``, ``{"camera": id}``, ``{"worker": id}``).
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
# A query of at most this many characters is matched by equal texts and codes only.
SHORT = 2
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
    """Return the query stripped and with single blanks; 400 when too short or too long."""
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
    phase: str | None = None,
) -> str | None:
    """Two CTEs, ``strong`` and ``hit``: the ids of ``table`` whose texts hold the query (two
    characters: equal it), and — only when there is none — those whose ``fuzzy`` texts (names
    and addresses; codes are matched exactly) resemble it: a typo. Each is an index scan of its
    own, capped at ``CANDIDATES``; the costly similarity scan runs only when nothing holds the
    query. ``phase`` ``"strong"`` asks for the first only, ``"similar"`` for the second only
    (the first known to have found nothing; None when there is nothing to compare)."""
    fuzzy = exprs if fuzzy is None else fuzzy
    if phase == "strong" or (phase is None and not fuzzy):
        return _strong(table, alias, exprs, q, where) + ", hit AS (SELECT id FROM strong)"
    if not fuzzy:
        return None
    similar = " OR ".join(f":q <% {e}" for e in fuzzy)
    if phase == "similar":
        return (
            f"hit AS (SELECT {alias}.id FROM {table} {alias} WHERE ({similar}){where} "
            "LIMIT :similar_cand)"
        )
    return (
        _strong(table, alias, exprs, q, where)
        + ", "
        + (
            f"hit AS (SELECT id FROM strong UNION ALL ("
            f"SELECT {alias}.id FROM {table} {alias} WHERE ({similar}){where} "
            f"AND NOT EXISTS (SELECT 1 FROM strong) LIMIT :similar_cand))"
        )
    )


# A code or number as typed (``34018800100101``, ``W000123``, ``SJ2026…``): Latin letters,
# digits, ``-`` and ``_``, with a digit. Such a query is looked up from the start of the codes
# first (a B-tree range, migration ``0026_search_ledger_speed``), not through the trigram index,
# where its digit trigrams are shared by most codes and many addresses.
CODE_LIKE = re.compile(r"(?=.*[0-9])[0-9A-Za-z_-]{3,}")


def code_like(q: str) -> bool:
    return CODE_LIKE.fullmatch(q) is not None


# An address (a building, unit, room or number, an estate, a street or community): no person's
# name holds one, so the workers are not asked.
ADDRESS_LIKE = re.compile(r"[0-9]+(栋|幢|单元|室|号楼|号)|小区|花园|家园|街道|社区")


def _with_code(q: str, name: str, code: str) -> tuple[str, ...]:
    """The texts that may hold the query: a code (Latin letters and digits) only if it is such."""
    return (name, code) if q.isascii() else (name,)


def address_like(q: str) -> bool:
    return len(q) >= 6 and ADDRESS_LIKE.search(q) is not None


def _code_hits(table: str, alias: str, column: str, where: str = "") -> str:
    """The CTEs ``strong`` and ``hit``: the ids of ``table`` whose code starts with the query
    (as typed or in capitals), in code order, capped at ``CANDIDATES``: a B-tree range scan
    (``text_pattern_ops``)."""
    col = f"{alias}.{column}"
    return (
        f"strong AS (SELECT {alias}.id FROM {table} {alias} "
        f"WHERE ({col} LIKE :prefix OR {col} LIKE :uprefix){where} ORDER BY {col} LIMIT :cand), "
        "hit AS (SELECT id FROM strong)"
    )


def similarity_threshold(q: str) -> float:
    """How similar a text must be to be suggested. One character wrong inside a query of n
    characters that is found inside a longer text costs about six of its n + 1 padded trigrams
    (three around the wrong character, two word-start ones that cannot match inside a text, and
    the extent's own); a little less than that is asked, within 0.45–0.75 (the higher, the
    fewer index entries the scan reads)."""
    n = len(q.replace(" ", ""))
    return round(max(0.45, min(0.75, (n - 6.5) / (n + 1))), 3)


def _threshold(session: Session, value: float, params: dict[str, Any]) -> None:
    """Set the word similarity the trigram index asks for (``<%``), for this transaction: a
    statement only when it differs from the one last set by this search (``params``)."""
    if params.get("threshold") == value:
        return
    session.execute(
        text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"), {"t": str(value)}
    )
    params["threshold"] = value


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
    return "" if scope is None else f" AND {column} = ANY(CAST(:scope_grids AS integer[]))"


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
        "prefix": f"{escape_like(q)}%",
        "uprefix": f"{escape_like(q.upper())}%",
        "uq": q.upper(),
        "k": limit,
        "cand": CANDIDATES,
        "similar_cand": SIMILAR_CANDIDATES,
    }
    if scope is not None:
        params["scope_grids"] = sorted(scope)
    for kind in kinds:
        if kind not in KINDS:
            raise BadParameter("kinds", f"'{kind}' is not one of {', '.join(KINDS)}")
    # In phases, each asked only of the kinds that still need it: texts equal to the query
    # (B-trees: addresses, names, codes), a code-like query's codes from their start, then the texts holding the query (trigram index), then —
    # for a kind where none does — the texts resembling it (a typo). A later phase is skipped
    # once an earlier one has found what was meant: a code from its start, a text equal to the
    # query, or as many texts holding it as are asked for (a resembling text ranks below them).
    phases = ("exact", "prefix") if code_like(q) else ("exact",)
    # Two characters make no trigram to look up and resemble everything: equal texts only
    # (B-tree lookups). A bare number (a code's digits, a phone or room fragment) resembles no
    # name: codes from their start or holding it. Neither asks for a similarity scan.
    similar = len(q.replace(" ", "")) > SHORT and not q.isdigit()
    phases += ("strong", "similar") if similar else ("strong",)
    found: dict[str, list[dict[str, Any]]] = {}
    for phase in phases:
        params["phase"] = phase
        for kind in kinds:
            if phase == "similar" and found.get(kind):
                continue
            if phase == "strong" and q.isdigit() and kind not in ("worker", "case"):
                # A bare number: codes from their start; only a worker's number or a case's
                # code holding it (typed without its letters).
                continue
            found.setdefault(kind, []).extend(FINDERS[kind](session, p, q, scope, params))
        items = [i for k in kinds for i in found.get(k, [])]
        if phase in ("exact", "prefix") and items:
            break
        if phase == "strong" and (len(items) >= limit or any(i["score"] >= 3 for i in items)):
            break
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


def _exact(table: str, alias: str, conds: tuple[str, ...], where: str = "") -> str:
    """The CTEs ``strong`` and ``hit``: the ids of ``table`` with a text equal to the query
    (``conds``, each a B-tree lookup), capped at ``CANDIDATES``."""
    return (
        f"strong AS (SELECT {alias}.id FROM {table} {alias} WHERE ({' OR '.join(conds)}){where} "
        "LIMIT :cand), hit AS (SELECT id FROM strong)"
    )


def _first_found(
    session: Session,
    params: dict[str, Any],
    code: str | None,
    trigram: str | None,
    rest: str,
    *,
    exact: str | None = None,
) -> list[Any]:
    """Run ``WITH <hits>, <rest>``: in the search's ``exact`` phase with the ``exact`` hits
    (B-tree lookups), in the ``prefix`` phase with the ``code`` hits (a code's B-tree range),
    in the others with the ``trigram`` hits of that phase."""
    hits = {"exact": exact, "prefix": code}.get(params["phase"], trigram)
    if hits is None:
        return []
    if params["phase"] == "similar":  # the word similarity its trigram scan asks for
        _threshold(session, similarity_threshold(params["q"]), params)
    joint = "\n" if rest.lstrip().startswith("SELECT") else ",\n"
    return session.execute(text(f"WITH {hits}{joint}{rest}"), params).all()


def _grids(
    session: Session, p: Principal, q: str, scope: frozenset[int] | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    if scope is not None and not scope:
        return []
    where = " AND g.valid_to IS NULL" + _grid_filter(scope, "g.id")
    rows = _first_found(
        session,
        params,
        _code_hits("grid", "g", "code", where) if code_like(q) else None,
        _hits(
            "grid",
            "g",
            _with_code(q, "g.name", "g.code"),
            q,
            where,
            fuzzy=("g.name",),
            phase=params["phase"],
        ),
        f"""top AS (SELECT g.id, g.code, g.name, g.level, {_score("g.name", "g.code")} AS score
                        FROM hit JOIN grid g ON g.id = hit.id ORDER BY score DESC, g.code LIMIT :k)
                SELECT top.*, ST_X(pt) AS lon, ST_Y(pt) AS lat
                FROM top JOIN grid g ON g.id = top.id
                CROSS JOIN LATERAL ST_PointOnSurface(g.geom) pt""",
        exact=_exact("grid", "g", ("g.name = :q", "g.code = :q", "g.code = :uq"), where),
    )
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


# A place's building number (``1栋``, ``3幢``, ``12号楼``): what comes before it is a term
# (``household_search_term``, migration ``0031_search_terms``).
BUILDING = re.compile(r"[0-9]+(栋|幢|号楼|号)$")
# The most terms whose places are compared with a misspelt query.
TERM_CANDIDATES = 40


def split_building(qp: str) -> tuple[str, str]:
    """A query's place as (term, building): ``蓝晖春家园1栋`` -> (``蓝晖春家园``, ``1栋``); a place
    without a building number is all term."""
    m = BUILDING.search(qp)
    return (qp, "") if m is None else (qp[: m.start()].strip(), qp[m.start() :])


def term_threshold(qe: str) -> float:
    """How similar a term must be to a query's term: as for a place (``place_threshold``), but
    down to 0.1 — a term of five characters with one wrong shares a single trigram with the
    term meant, and the terms carry none of the numbers most addresses share, so few terms
    share any trigram with a query."""
    n = len(qe.replace(" ", ""))
    return round(max(0.1, min(0.6, (n - 5) / (n + 4))), 3)


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
    phase = params["phase"]
    # No address holds a code, and a bare number (a room, a phone fragment) is in too many
    # addresses to say which is meant.
    if phase == "prefix" or (code_like(q) and (len(q) >= 5 or q.isdigit())):
        return []
    if phase == "exact":
        # A whole address as typed: its households through the B-tree of the addresses (the
        # trigram scan of a long address reads the long lists of its common digit trigrams).
        hits = _exact("household", "h", ("h.address = :q",), where)
        return _household_results(_household_rows(session, hits, {**params, **extra}))
    if phase == "strong":
        qp, qr = split_place(q)
        if len(q) >= 3 and len(qp) >= 3 and not q.isascii():
            # The places holding the query's place (ending with it when a unit or room
            # follows), then their households holding the query: the trigram lists of a
            # place are those of some 150,000 places, not of millions of addresses; each place's
            # households are read through the index on their grid. Only when none does are
            # the households' own trigram lists read (a query across a place and its unit),
            # in the same statement.
            ppat = f"%{escape_like(qp)}" + ("" if qr else "%")
            hits = f"""places AS MATERIALIZED (
                    SELECT sp.place, sp.grid_id FROM search_place sp
                    WHERE sp.place ILIKE :ppat{place_where} LIMIT :cand),
                near AS MATERIALIZED (SELECT h.id FROM places sp
                           CROSS JOIN LATERAL (
                               SELECT h.id, {HOUSEHOLD_TEXT} AS t FROM household h
                               WHERE h.grid_id = sp.grid_id{where} OFFSET 0) h
                           WHERE household_search_place(h.t) = sp.place AND h.t ILIKE :pat
                           LIMIT :cand),
                hit AS (SELECT id FROM near UNION ALL (
                           SELECT h.id FROM household h
                           WHERE {HOUSEHOLD_TEXT} ILIKE :pat{where}
                             AND NOT EXISTS (SELECT 1 FROM near) LIMIT :cand))"""
            rows = _household_rows(session, hits, {**params, **extra, "ppat": ppat})
            return _household_results(rows)
        hits = _strong("household", "h", (HOUSEHOLD_TEXT,), q, where)
        hits += ", hit AS (SELECT id FROM strong)"
        return _household_results(_household_rows(session, hits, {**params, **extra}))
    # Nothing holds the query. A query of Latin letters and digits only is matched exactly.
    if q.isascii():
        return []
    qp, qr = split_place(q)
    rows = []
    near = len(qp) >= MIN_LENGTH
    # The households of the chosen places with the unit and room asked for (exactly: a typo
    # there is left to the full scan).
    households_of_places = f"""hit AS (SELECT h.id FROM places p
                         JOIN search_place sp ON sp.place = p.place{place_where}
                         JOIN household h ON h.grid_id = sp.grid_id
                          AND household_search_place({HOUSEHOLD_TEXT}) = sp.place
                         WHERE {HOUSEHOLD_TEXT} LIKE :qr{where} LIMIT :similar_cand)"""
    extra.update(qp=qp, place_cand=PLACE_CANDIDATES, qr=f"%{escape_like(qr)}")
    qe, qb = split_building(qp)
    if near and len(qe) >= MIN_LENGTH:
        # The terms (``search_term``: places without their building number, a few thousand
        # for a city) most like the query's, then their places with the building asked for
        # (all of them when none is), the most like the query's place first: no trigram of a
        # building, unit or room number is looked up.
        building = " AND sp.place = t.term || :qb" if qb else ""
        hits = f"""terms AS MATERIALIZED (
                    SELECT t.term FROM search_term t WHERE :qe <% t.term
                    ORDER BY word_similarity(:qe, t.term) DESC, t.term LIMIT :term_cand),
                places AS MATERIALIZED (
                    SELECT c.place FROM (
                        SELECT DISTINCT sp.place FROM terms t
                        JOIN search_place sp
                          ON household_search_term(sp.place) = t.term{building}{place_where}) c
                    ORDER BY word_similarity(:qp, c.place) DESC, c.place LIMIT :place_cand),
                {households_of_places}"""
        _threshold(session, term_threshold(qe), params)
        rows = _household_rows(
            session, hits, {**params, **extra, "qe": qe, "qb": qb, "term_cand": TERM_CANDIDATES}
        )
    if near and not rows:
        # The places most like the query's place (a typo in the building number, a caller
        # whose grids hold none of the terms found, an address of another form).
        hits = f"""places AS MATERIALIZED (
                    SELECT c.place FROM (
                        SELECT DISTINCT sp.place FROM search_place sp
                        WHERE :qp <% sp.place{place_where}) c
                    ORDER BY word_similarity(:qp, c.place) DESC, c.place LIMIT :place_cand),
                {households_of_places}"""
        # The places' index scan asks for the similarity of a place.
        _threshold(session, place_threshold(qp), params)
        rows = _household_rows(session, hits, {**params, **extra})
    if not rows and (not near or qr):
        _threshold(session, similarity_threshold(q), params)
        # No place resembles the query's place, or none has its unit and room: every
        # household is compared with the query.
        hits = _hits("household", "h", (HOUSEHOLD_TEXT,), q, where, phase="similar")
        rows = _household_rows(session, hits, {**params, **extra})
    return _household_results(rows)


def _household_results(rows: list[Any]) -> list[dict[str, Any]]:
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
    if p.role == "department" or (scope is not None and not scope) or address_like(q):
        return []
    in_scope = "" if scope is None else " AND a.grid_id = ANY(CAST(:scope_grids AS integer[]))"
    where = f" AND EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = w.id{in_scope})"
    rows = _first_found(
        session,
        params,
        _code_hits("worker", "w", "code", where) if code_like(q) else None,
        _hits(
            "worker",
            "w",
            _with_code(q, "w.name", "w.code"),
            q,
            fuzzy=("w.name",),
            where=where,
            phase=params["phase"],
        ),
        f"""top AS (SELECT w.id, w.code, w.name, {_score("w.name", "w.code")} AS score
                        FROM hit JOIN worker w ON w.id = hit.id ORDER BY score DESC, w.name LIMIT :k)
                SELECT hit.*, a.role, a.grid_id, g.name AS grid_name, ST_X(pt) AS lon, ST_Y(pt) AS lat
                FROM top hit
                CROSS JOIN LATERAL (
                    SELECT a.role, a.grid_id FROM grid_assignment a JOIN grid g ON g.id = a.grid_id
                    WHERE a.worker_id = hit.id{in_scope}
                    ORDER BY g.level DESC, a.grid_id LIMIT 1) a
                JOIN grid g ON g.id = a.grid_id
                CROSS JOIN LATERAL ST_PointOnSurface(g.geom) pt""",
        exact=_exact("worker", "w", ("w.name = :q", "w.code = :q", "w.code = :uq"), where),
    )
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
    if not q.isascii():  # case codes are Latin letters and digits
        return []
    cond, cparams = case_scope(session, p).sql("c")
    if cond == "FALSE":
        return []
    rows = _first_found(
        session,
        {**params, **cparams},
        _code_hits('"case"', "c", "code", f" AND {cond}") if code_like(q) else None,
        _hits('"case"', "c", ("c.code",), q, f" AND {cond}", fuzzy=(), phase=params["phase"]),
        f"""top AS (SELECT c.id, c.code, {_score("c.code")} AS score
                        FROM hit JOIN "case" c ON c.id = hit.id ORDER BY score DESC, c.code DESC LIMIT :k)
                SELECT hit.*, c.status, c.grid_id, cat.name AS category_name,
                       ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
                FROM top hit
                JOIN "case" c ON c.id = hit.id
                JOIN case_category cat ON cat.code = c.category""",
        exact=_exact('"case"', "c", ("c.code = :q", "c.code = :uq"), f" AND {cond}"),
    )
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
    where = _grid_filter(scope, "s.grid_id")
    rows = _first_found(
        session,
        params,
        None,
        _hits("service_point", "s", ("s.name",), q, where, phase=params["phase"]),
        f"""SELECT s.id, s.name, s.kind, s.grid_id, s.address, {_score("s.name")} AS score,
                       ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
                FROM service_point s
                WHERE s.id IN (SELECT id FROM hit)
                ORDER BY score DESC, s.name LIMIT :k""",
        exact=_exact("service_point", "s", ("s.name = :q",), where),
    )
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
    where = _grid_filter(scope, "m.grid_id")
    rows = _first_found(
        session,
        params,
        _code_hits("camera", "m", "code", where) if code_like(q) else None,
        _hits(
            "camera",
            "m",
            _with_code(q, "m.name", "m.code"),
            q,
            where,
            fuzzy=("m.name",),
            phase=params["phase"],
        ),
        f"""SELECT m.id, m.code, m.name, m.grid_id, {_score("m.code", "m.name")} AS score,
                       ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat
                FROM camera m
                WHERE m.id IN (SELECT id FROM hit)
                ORDER BY score DESC, m.code LIMIT :k""",
        exact=_exact("camera", "m", ("m.code = :q", "m.code = :uq", "m.name = :q"), where),
    )
    return [_result("camera", r, r.name or r.code, r.code, grid_id=r.grid_id) for r in rows]


FINDERS = {
    "grid": _grids,
    "household": _households,
    "worker": _workers,
    "case": _cases,
    "service_point": _service_points,
    "camera": _cameras,
}

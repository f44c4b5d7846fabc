"""The grid tree: leaves, subtrees, ancestors, the grids a person answers for, household counts.

Every walk over ``grid.parent_id`` is written here once, as SQL fragments for the queries that
join the tree to something else and as functions for those that only want ids. Two words:

- a *current* grid has ``valid_to IS NULL``; a retired one keeps its row (history, old cases);
- a *leaf* grid is a current grid with no current child — the grid a household, a case or a
  camera belongs to.

The walks are plain recursive CTEs over the ``parent_id`` index: the tree is at most five levels
deep, so a subtree or a chain costs one index probe per grid it holds. The in-memory index of
leaf shapes for bulk work is ``coverage._GridIndex`` / ``gis.assign.PolygonIndex``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session


def is_leaf(alias: str = "g") -> str:
    """SQL condition: the grid ``alias`` has no current child (add ``valid_to IS NULL`` for a
    current leaf)."""
    return (
        "NOT EXISTS (SELECT 1 FROM grid leaf_child "
        f"WHERE leaf_child.parent_id = {alias}.id AND leaf_child.valid_to IS NULL)"
    )


def descendants_cte(
    name: str, seed: str, *, key: str | None = None, current: bool = True, union_all: bool = False
) -> str:
    """A recursive CTE ``name`` (put it after ``WITH RECURSIVE``): the rows of ``seed`` (a SELECT
    of ``id``, or of ``key, id``) and every grid below them, each carrying its seed's ``key``.

    ``current`` walks only current children; ``union_all`` keeps repeated rows (cheaper when
    the seeds cannot overlap)."""
    carried = f"{name}.{key}, " if key else ""
    only_current = " WHERE c.valid_to IS NULL" if current else ""
    union = "UNION ALL" if union_all else "UNION"
    return (
        f"{name} AS ({seed} {union} SELECT {carried}c.id FROM grid c "
        f"JOIN {name} ON c.parent_id = {name}.id{only_current})"
    )


def subtree_in(seed_where: str, *, current: bool = False) -> str:
    """SQL of a parenthesised id list for ``… IN <this>``: the grids matching ``seed_where``
    (a condition on ``grid``, e.g. ``id = :grid``) and all below them (all states, or only
    current children)."""
    cte = descendants_cte("sub", f"SELECT id FROM grid WHERE {seed_where}", current=current)
    return f"(WITH RECURSIVE {cte} SELECT id FROM sub)"


def ancestors_cte(
    name: str, seed: str, *, carry: Sequence[str] = (), columns: Sequence[str] = ()
) -> str:
    """A recursive CTE ``name``: the rows of ``seed`` and, for each, every grid above it.

    ``seed`` selects, in this order, the ``carry`` columns (kept along the chain, e.g. the leaf
    it started from), ``id``, ``parent_id``, the grid ``columns`` and ``0 AS depth``; each step
    up adds one to ``depth``."""
    kept = "".join(f"{name}.{c}, " for c in carry)
    cols = "".join(f", p.{c}" for c in columns)
    return (
        f"{name} AS ({seed} UNION ALL SELECT {kept}p.id, p.parent_id{cols}, {name}.depth + 1 "
        f"FROM grid p JOIN {name} ON p.id = {name}.parent_id)"
    )


def subtree_ids(
    session: Session, roots: Iterable[int], *, current: bool = False, current_root: bool = False
) -> set[int]:
    """Return the ids of ``roots`` and of every grid below them.

    ``current`` follows only current children, ``current_root`` drops a retired root; both off,
    retired grids count too (what a case or visit filed under a retired grid needs)."""
    ids = sorted({int(r) for r in roots})
    if not ids:
        return set()
    seed = "id = ANY(:roots)" + (" AND valid_to IS NULL" if current_root else "")
    return set(session.scalars(text(subtree_in(seed, current=current)), {"roots": ids}))


def ancestor_ids(session: Session, grid_ids: Iterable[int], *, include_self: bool) -> set[int]:
    """Return the ids of every grid above ``grid_ids`` (and the grids themselves if asked)."""
    ids = sorted({int(g) for g in grid_ids if g is not None})
    if not ids:
        return set()
    cte = ancestors_cte("up", "SELECT id, parent_id, 0 AS depth FROM grid WHERE id = ANY(:ids)")
    floor = 0 if include_self else 1
    sql = f"WITH RECURSIVE {cte} SELECT DISTINCT id FROM up WHERE depth >= {floor}"
    return set(session.scalars(text(sql), {"ids": ids}))


def chain(session: Session, grid_id: int) -> list[dict[str, object]]:
    """Return the grids above ``grid_id``, from the top level down (the grid itself excluded)."""
    cte = ancestors_cte(
        "up",
        "SELECT id, parent_id, code, name, level, 0 AS depth FROM grid WHERE id = :id",
        columns=("code", "name", "level"),
    )
    rows = session.execute(
        text(
            f"WITH RECURSIVE {cte} SELECT id, code, name, level FROM up WHERE depth > 0 ORDER BY level"
        ),
        {"id": grid_id},
    ).all()
    return [{"id": r.id, "code": r.code, "name": r.name, "level": r.level} for r in rows]


def scope_of(session: Session, assigned: Iterable[int]) -> frozenset[int]:
    """Return the grids a person assigned to ``assigned`` answers for: those and all below them
    (retired ones included, so their old cases and visits stay visible)."""
    return frozenset(subtree_ids(session, assigned))


def recount(session: Session, grid_ids: Iterable[int] | None = None) -> None:
    """Recount the households of these grids (None: every current grid); a grid counts those of
    itself and all its current descendants. Only changed counts are written."""
    if grid_ids is None:
        seed, params = "SELECT id, id AS root FROM grid WHERE valid_to IS NULL", {}
    else:
        ids = sorted({int(i) for i in grid_ids if i is not None})
        if not ids:
            return
        seed, params = "SELECT id, id AS root FROM grid WHERE id = ANY(:ids)", {"ids": ids}
    session.flush()
    session.execute(
        text(
            f"""
            WITH RECURSIVE tree AS (
                {seed}
                UNION ALL
                SELECT c.id, t.root FROM grid c JOIN tree t ON c.parent_id = t.id
                WHERE c.valid_to IS NULL
            ), counts AS (
                SELECT t.root, count(h.id) AS n FROM tree t
                LEFT JOIN household h ON h.grid_id = t.id GROUP BY t.root
            )
            UPDATE grid g SET household_count = counts.n FROM counts
            WHERE g.id = counts.root AND g.household_count IS DISTINCT FROM counts.n
            """
        ),
        params,
    )

"""The grid tree: leaves, subtrees, ancestors, the grids a person answers for, household counts.

Every walk over the tree is written here once, as SQL fragments for the queries that join the
tree to something else and as functions for those that only want ids. Two words:

- a *current* grid has ``valid_to IS NULL``; a retired one keeps its row (history, old cases);
- a *leaf* grid is a current grid with no current child — the grid a household, a case or a
  camera belongs to.

The walks read ``grid.path``, the materialised path (the ids from the top-level grid down to
the grid itself), which the database's triggers keep exact on every insert and every change of
``parent_id`` (revision 0027; no code writes it). A subtree is one probe of the path's GIN index
(``path @> ARRAY[id]``, ``path && ids`` for several roots); the ancestors of a grid are its
path. A grid edit never leaves a current grid under a retired one, so the *current* part of a
subtree is its root and the current grids in it. ``bench/bench_grid_tree.py`` measures these
walks against the recursive CTEs over ``parent_id`` they replace. The in-memory index of leaf
shapes for bulk work is ``coverage._GridIndex`` / ``gis.assign.PolygonIndex``.
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
    """A CTE ``name`` (put it in a ``WITH`` list): the rows of ``seed`` (a SELECT of ``id``, or
    of ``key, id``) and every grid below them, each carrying its seed's ``key``.

    ``current`` keeps only current grids below the seeds; ``union_all`` keeps repeated rows
    (cheaper when the seeds cannot overlap)."""
    carried = f"s.{key}, " if key else ""
    only_current = " AND (g.id = s.id OR g.valid_to IS NULL)" if current else ""
    distinct = "" if union_all else "DISTINCT "
    return (
        f"{name} AS (SELECT {distinct}{carried}g.id FROM ({seed}) s "
        f"JOIN grid g ON g.path @> ARRAY[s.id]{only_current})"
    )


def subtree_in(seed_where: str, *, current: bool = False) -> str:
    """SQL of a parenthesised id list for ``… IN <this>``: the grids matching ``seed_where``
    (a condition on ``grid``, e.g. ``id = :grid``) and all below them (all states, or only
    current ones below the seeds)."""
    only_current = " WHERE g.valid_to IS NULL OR g.id = ANY(s.ids)" if current else ""
    return (
        f"(SELECT g.id FROM (SELECT ARRAY(SELECT id FROM grid WHERE {seed_where}) AS ids) s "
        f"JOIN grid g ON g.path && s.ids{only_current})"
    )


def ancestors_cte(
    name: str, seed: str, *, carry: Sequence[str] = (), columns: Sequence[str] = ()
) -> str:
    """A CTE ``name``: the rows of ``seed`` and, for each, every grid above it.

    ``seed`` selects, in this order, the ``carry`` columns (kept along the chain, e.g. the leaf
    it started from), ``id``, ``parent_id``, the grid ``columns`` and ``0 AS depth``; each grid
    up has a ``depth`` one more than the one below it."""
    kept = "".join(f"s.{c}, " for c in carry)
    cols = "".join(f", p.{c}" for c in columns)
    return (
        f"{name} AS (SELECT {kept}p.id, p.parent_id{cols}, "
        f"CAST(cardinality(x.path) - a.n AS integer) AS depth FROM ({seed}) s "
        f"JOIN grid x ON x.id = s.id "
        f"CROSS JOIN LATERAL unnest(x.path) WITH ORDINALITY AS a(id, n) "
        f"JOIN grid p ON p.id = a.id)"
    )


def subtree_ids(
    session: Session, roots: Iterable[int], *, current: bool = False, current_root: bool = False
) -> set[int]:
    """Return the ids of ``roots`` and of every grid below them.

    ``current`` keeps only current grids below the roots, ``current_root`` drops a retired
    root; both off, retired grids count too (what a case or visit filed under a retired grid
    needs)."""
    ids = sorted({int(r) for r in roots})
    if not ids:
        return set()
    seed = "id = ANY(CAST(:roots AS integer[]))" + (" AND valid_to IS NULL" if current_root else "")
    return set(session.scalars(text(subtree_in(seed, current=current)), {"roots": ids}))


def ancestor_ids(session: Session, grid_ids: Iterable[int], *, include_self: bool) -> set[int]:
    """Return the ids of every grid above ``grid_ids`` (and the grids themselves if asked)."""
    ids = sorted({int(g) for g in grid_ids if g is not None})
    if not ids:
        return set()
    above = "" if include_self else " AND a.n < cardinality(g.path)"
    sql = (
        "SELECT DISTINCT a.id FROM grid g "
        "CROSS JOIN LATERAL unnest(g.path) WITH ORDINALITY AS a(id, n) "
        f"WHERE g.id = ANY(CAST(:ids AS integer[])){above}"
    )
    return set(session.scalars(text(sql), {"ids": ids}))


def chain(session: Session, grid_id: int) -> list[dict[str, object]]:
    """Return the grids above ``grid_id``, from the top level down (the grid itself excluded)."""
    rows = session.execute(
        text(
            "SELECT p.id, p.code, p.name, p.level FROM grid g JOIN grid p ON p.id = ANY(g.path) "
            "WHERE g.id = :id AND p.id <> g.id ORDER BY p.level"
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
    session.flush()
    if grid_ids is None:
        # Every household counts once for each grid on its (current) grid's path.
        session.execute(
            text(
                """
                WITH counts AS (
                    SELECT a.id, count(*) AS n FROM household h JOIN grid g ON g.id = h.grid_id
                    CROSS JOIN LATERAL unnest(g.path) AS a(id)
                    WHERE g.valid_to IS NULL GROUP BY a.id
                )
                UPDATE grid g SET household_count = coalesce(c.n, 0)
                FROM grid x LEFT JOIN counts c ON c.id = x.id
                WHERE g.id = x.id AND x.valid_to IS NULL
                  AND g.household_count IS DISTINCT FROM coalesce(c.n, 0)
                """
            )
        )
        return
    ids = sorted({int(i) for i in grid_ids if i is not None})
    if not ids:
        return
    session.execute(
        text(
            f"""
            WITH {
                descendants_cte(
                    "tree",
                    "SELECT id AS root, id FROM grid WHERE id = ANY(CAST(:ids AS integer[]))",
                    key="root",
                )
            }, counts AS (
                SELECT t.root, count(h.id) AS n FROM tree t
                LEFT JOIN household h ON h.grid_id = t.id GROUP BY t.root
            )
            UPDATE grid g SET household_count = counts.n FROM counts
            WHERE g.id = counts.root AND g.household_count IS DISTINCT FROM counts.n
            """
        ),
        {"ids": ids},
    )

"""Benchmark the grid tree (``app.services.grid_tree``) on 100k micro-grids: the materialised path
(``grid.path``, revision 0027) against recursive CTEs over ``parent_id`` (the walks it replaced,
kept here as the baseline).

The city is built once in its own database (``--rebuild`` builds it again): 10 streets, 100
communities, 2,000 grids, 100,000 micro-grids (100 m boxes), 5,000 retired micro-grids (history
rows under their grid) and two households per micro-grid. The tile triggers are switched off in
that database (the benchmark reads no tile, and they would cost both sides of a recount alike);
the path triggers stay on, so loading is itself a test of them.

Each hot path runs path and CTE in alternating order for ``--rounds`` rounds in one run (the
small walks 20 times a round, timed per call); the answers must be equal (the run fails
otherwise); it prints min / median per side with the load average and ends with one
``bench.report.row`` per hot path.

    python bench/bench_grid_tree.py [--rounds 7] [--rebuild]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app import migrate as mig  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.services import grid_tree  # noqa: E402
from bench import report  # noqa: E402

DB = "gridgov_bench_grid_tree"
D = 0.001  # a micro-grid's side in degrees
X0, Y0 = 117.0, 31.0
# Blocks in micro-grids: a grid is 10 × 5 of them, a community 40 × 25, a street 200 × 50.
LEVELS = ((1, "S", 200, 50), (2, "C", 40, 25), (3, "G", 10, 5), (4, "M", 1, 1))
COLS, ROWS = 400, 250  # 100,000 micro-grids
TILE_TRIGGERS = {
    "grid": ("trg_grid_tiles_insert", "trg_grid_tiles_update", "trg_grid_tiles_delete"),
    "household": (
        "trg_household_cells_insert",
        "trg_household_cells_update",
        "trg_household_cells_delete",
    ),
}


def build(owner_url: str) -> None:
    """Load the city (as the owner role: the tile triggers are switched off while it loads)."""
    engine = create_engine(owner_url)
    with engine.begin() as c:
        for table, names in TILE_TRIGGERS.items():
            for name in names:
                c.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {name}"))
        parent = None
        for level, letter, bx, by in LEVELS:
            started = time.perf_counter()
            nx, ny = COLS // bx, ROWS // by
            area = (bx * D * 111_320) * (by * D * 110_950) * 0.857
            parent_join = ""
            parent_id = "NULL"
            if parent is not None:
                p_letter, p_bx, p_by = parent
                parent_join = (
                    f"JOIN grid p ON p.valid_to IS NULL AND p.code = "
                    f"'{p_letter}-' || (i * {bx} / {p_bx}) || '-' || (j * {by} / {p_by})"
                )
                parent_id = "p.id"
            c.execute(
                text(
                    f"""
                    INSERT INTO grid (code, name, level, parent_id, geom, area_m2)
                    SELECT '{letter}-' || i || '-' || j, '{letter}' || i || '-' || j, {level},
                           {parent_id},
                           ST_Multi(ST_MakeEnvelope({X0} + i * {bx * D}, {Y0} + j * {by * D},
                                    {X0} + (i + 1) * {bx * D}, {Y0} + (j + 1) * {by * D}, 4326)),
                           {area}
                    FROM generate_series(0, {nx - 1}) i CROSS JOIN generate_series(0, {ny - 1}) j
                    {parent_join}
                    """
                )
            )
            print(f"level {level}: {nx * ny:,} grids in {time.perf_counter() - started:.1f} s")
            parent = (letter, bx, by)
        # History: every 20th micro-grid had a predecessor, retired, under the same grid.
        c.execute(
            text(
                """
                INSERT INTO grid (code, name, level, parent_id, geom, area_m2, valid_from, valid_to)
                SELECT code, name || '（旧）', level, parent_id, geom, area_m2,
                       now() - interval '2 years', now() - interval '1 year'
                FROM grid WHERE level = 4 AND id % 20 = 0
                """
            )
        )
        c.execute(
            text(
                """
                INSERT INTO household (geom, grid_id, people)
                SELECT ST_SetSRID(ST_MakePoint(ST_XMin(g.geom) + k * 0.0003,
                                               ST_YMin(g.geom) + k * 0.0003), 4326), g.id, k
                FROM grid g CROSS JOIN generate_series(1, 2) k
                WHERE g.level = 4 AND g.valid_to IS NULL
                """
            )
        )
        c.execute(text("ANALYZE grid"))
        c.execute(text("ANALYZE household"))
    with Session(engine) as session:  # the counts as the city starts with them
        grid_tree.recount(session)
        session.commit()
    engine.dispose()


# ---------------------------------------------------------------- the baseline: recursive CTEs


def cte_subtree(session: Session, roots: Iterable[int], *, current: bool, current_root: bool):  # type: ignore[no-untyped-def]
    seed = "id = ANY(:roots)" + (" AND valid_to IS NULL" if current_root else "")
    only = " WHERE c.valid_to IS NULL" if current else ""
    sql = (
        f"WITH RECURSIVE sub AS (SELECT id FROM grid WHERE {seed} UNION "
        f"SELECT c.id FROM grid c JOIN sub ON c.parent_id = sub.id{only}) SELECT id FROM sub"
    )
    return set(session.scalars(text(sql), {"roots": sorted(roots)}))


def cte_chain(session: Session, grid_id: int):  # type: ignore[no-untyped-def]
    rows = session.execute(
        text(
            "WITH RECURSIVE up AS (SELECT id, parent_id, code, name, level, 0 AS depth FROM grid "
            "WHERE id = :id UNION ALL SELECT p.id, p.parent_id, p.code, p.name, p.level, "
            "up.depth + 1 FROM grid p JOIN up ON p.id = up.parent_id) "
            "SELECT id, code, name, level FROM up WHERE depth > 0 ORDER BY level"
        ),
        {"id": grid_id},
    ).all()
    return [{"id": r.id, "code": r.code, "name": r.name, "level": r.level} for r in rows]


def cte_recount(session: Session, grid_ids: list[int] | None) -> None:
    if grid_ids is None:
        seed, params = "SELECT id, id AS root FROM grid WHERE valid_to IS NULL", {}
    else:
        seed, params = "SELECT id, id AS root FROM grid WHERE id = ANY(:ids)", {"ids": grid_ids}
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


AT_LEVEL = """
    SELECT leaf, id FROM up WHERE level = 2 ORDER BY leaf
"""


def cte_at_level(session: Session):  # type: ignore[no-untyped-def]
    """Every grid with its ancestor at level 2 (what the case KPIs group by)."""
    sql = (
        "WITH RECURSIVE up AS (SELECT id AS leaf, id, parent_id, level, 0 AS depth FROM grid "
        "UNION ALL SELECT up.leaf, p.id, p.parent_id, p.level, up.depth + 1 FROM grid p "
        "JOIN up ON p.id = up.parent_id)" + AT_LEVEL
    )
    return session.execute(text(sql)).all()


def path_at_level(session: Session):  # type: ignore[no-untyped-def]
    cte = grid_tree.ancestors_cte(
        "up",
        "SELECT id AS leaf, id, parent_id, level, 0 AS depth FROM grid",
        carry=("leaf",),
        columns=("level",),
    )
    return session.execute(text(f"WITH {cte}" + AT_LEVEL)).all()


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[object, float]:
    """Run ``fn`` ``repeat`` times; return its answer and the milliseconds a call took (a small
    walk is timed over several calls, as a server answering requests runs it, not once after
    the large walks have pushed its index pages out of the cache)."""
    started = time.perf_counter()
    for _ in range(repeat):
        answer = fn()
    return answer, (time.perf_counter() - started) * 1000 / repeat


def counts_after(session: Session, ids: list[int] | None, recount: Callable[[], None]):  # type: ignore[no-untyped-def]
    """Zero the counts of ``ids`` (None: of every 50th grid), recount (``ids``, or every grid),
    and return the counts with the recount's time alone (the caller rolls back)."""
    where = "id % 50 = 0" if ids is None else "id = ANY(:ids)"
    session.execute(text(f"UPDATE grid SET household_count = 0 WHERE {where}"), {"ids": ids})
    _, ms = timed(recount)
    answer = sorted(
        session.execute(text("SELECT id, household_count FROM grid WHERE household_count > 0"))
    )
    return answer, ms


# ---------------------------------------------------------------- the run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {report.load_text()}", flush=True)
    cluster = default_cluster()
    cluster.start()
    probe = create_engine(cluster.url("postgres"))
    with probe.connect() as c:
        exists = c.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DB})
    probe.dispose()
    if args.rebuild or not exists:
        cluster.recreate_database(DB)
        mig.upgrade(cluster.owner_url(DB), app_url=cluster.url(DB))
        build(cluster.owner_url(DB))
    engine = create_engine(cluster.url(DB))
    session = Session(engine)
    micro = session.scalar(text("SELECT count(*) FROM grid WHERE level = 4 AND valid_to IS NULL"))
    if micro < 100_000:
        raise SystemExit(f"the city has {micro} micro-grids; run with --rebuild")
    streets = list(session.scalars(text("SELECT id FROM grid WHERE level = 1 ORDER BY code")))
    grid3 = session.scalar(text("SELECT id FROM grid WHERE code = 'G-17-23'"))
    leaf = session.scalar(text("SELECT id FROM grid WHERE code = 'M-173-118'"))
    print(f"city: {micro:,} micro-grids, {len(streets)} streets", flush=True)

    street = [streets[5]]
    # Each side returns (answer, milliseconds).
    cases: dict[str, tuple[Callable[[], tuple[object, float]], ...]] = {
        "grid tree: current subtree of a street": (
            lambda: timed(
                lambda: grid_tree.subtree_ids(session, street, current=True, current_root=True)
            ),
            lambda: timed(lambda: cte_subtree(session, street, current=True, current_root=True)),
        ),
        "grid tree: scope of a centre (3 streets, history too)": (
            lambda: timed(lambda: grid_tree.scope_of(session, streets[:3])),
            lambda: timed(
                lambda: frozenset(
                    cte_subtree(session, streets[:3], current=False, current_root=False)
                )
            ),
        ),
        "grid tree: subtree of a grid": (
            lambda: timed(lambda: grid_tree.subtree_ids(session, [grid3], current=True), 20),
            lambda: timed(
                lambda: cte_subtree(session, [grid3], current=True, current_root=False), 20
            ),
        ),
        "grid tree: chain above a micro-grid": (
            lambda: timed(lambda: grid_tree.chain(session, leaf), 20),
            lambda: timed(lambda: cte_chain(session, leaf), 20),
        ),
        "grid tree: every grid's community": (
            lambda: timed(lambda: path_at_level(session)),
            lambda: timed(lambda: cte_at_level(session)),
        ),
        "grid tree: recount a street": (
            lambda: counts_after(session, street, lambda: grid_tree.recount(session, street)),
            lambda: counts_after(session, street, lambda: cte_recount(session, street)),
        ),
        "grid tree: recount every grid": (
            lambda: counts_after(session, None, lambda: grid_tree.recount(session)),
            lambda: counts_after(session, None, lambda: cte_recount(session, None)),
        ),
    }
    times = {name: {"path": [], "cte": []} for name in cases}
    wrong: list[str] = []
    for rnd in range(args.rounds):
        for i, (name, (path_fn, cte_fn)) in enumerate(cases.items()):
            order = (("path", path_fn), ("cte", cte_fn))
            if (rnd + i) % 2:
                order = order[::-1]
            answers = {}
            for side, fn in order:
                answers[side], ms = fn()
                times[name][side].append(ms)
                session.rollback()
            if answers["path"] != answers["cte"] and name not in wrong:
                wrong.append(name)
        print(f"round {rnd + 1}/{args.rounds}: load {report.load_text()}", flush=True)
    session.close()
    engine.dispose()

    print(f"answers equal: {len(cases) - len(wrong)}/{len(cases)} {wrong or ''}")
    for name, t in times.items():
        print(f"{name}: path {report.summary(t['path'])} ms; CTE {report.summary(t['cte'])} ms")
    for name, t in times.items():
        path_ms, cte_ms = statistics.median(t["path"]), statistics.median(t["cte"])
        report.row(
            name,
            project=path_ms,
            baseline=cte_ms,
            unit="ms",
            baseline_name="recursive CTE",
            target="path ≤ CTE, same answer",
            holds=name not in wrong and path_ms <= cte_ms,
            note="100k micro-grids",
        )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

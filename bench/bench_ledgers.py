"""Benchmark the household and population ledgers (台账) on the city of ``bench/bench_search.py``
(100k micro-grids, 2M households; build it first with that script).

Times, case by case in alternating order, a page of each ledger as served
(``app.services.ledgers``: the unfiltered total from the households kept per grid, the page's
grids first) against the previous queries (every household in scope counted and, for the
population ledger, every grid's households summed on every page), for three scopes: the whole
city (the administrator), a street (a centre) and a grid (a grid chief). It checks that both
answer the same items and total, and prints p50/p95 and the load average. A query past
``--timeout`` seconds is cancelled and timed as that.

    python bench/bench_ledgers.py [--rounds 3] [--timeout 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import report  # noqa: E402
from bench_emap_scale import pct  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.embedded_pg import default_cluster  # noqa: E402
from app.models.people import SENSITIVE_TAGS  # noqa: E402
from app.services import ledgers  # noqa: E402

DB = "gridgov_bench_search"


def previous_households(session, grids, *, sort="address", order="asc", limit=50, offset=0):  # type: ignore[no-untyped-def]
    """The household ledger's previous query: every household in scope counted by a window."""
    order_sql, _sort, _order = ledgers._order("households", sort, order)
    where, params = ["TRUE"], {}
    if grids is not None:
        where.append("h.grid_id = ANY(:grids)")
        params["grids"] = grids
    rows = session.execute(
        text(
            f"""SELECT h.id, count(*) OVER () AS total
                FROM household h JOIN grid g ON g.id = h.grid_id
                LEFT JOIN worker m ON m.id = h.linked_member_id
                WHERE {" AND ".join(where)}
                ORDER BY {order_sql} LIMIT :limit OFFSET :offset"""
        ),
        {**params, "limit": limit, "offset": offset},
    ).all()
    return [r.id for r in rows], (rows[0].total if rows else 0)


def previous_population(session, grids, *, level=4, sort="code", order="asc", limit=50, offset=0):  # type: ignore[no-untyped-def]
    """The population ledger's previous query: every grid's households summed, then a page."""
    order_sql, _sort, _order = ledgers._order("people", sort, order)
    where, params = ["g.valid_to IS NULL", "g.level = :level"], {"level": level}
    if grids is not None:
        where.append("g.id = ANY(:grids)")
        params["grids"] = grids
    tag_cols = ",\n".join(
        f"count(h.id) FILTER (WHERE '{code}' = ANY(h.tags)) AS tag_{code}"
        for code in SENSITIVE_TAGS
    )
    rows = session.execute(
        text(
            f"""WITH RECURSIVE sel AS (SELECT g.id FROM grid g WHERE {" AND ".join(where)}),
                down AS (SELECT id AS top, id FROM sel
                         UNION ALL SELECT d.top, c.id FROM grid c JOIN down d ON c.parent_id = d.id
                         WHERE c.valid_to IS NULL),
                agg AS (SELECT d.top, count(h.id) AS households,
                               coalesce(sum(h.people), 0) AS people,
                               count(h.id) FILTER (WHERE h.linked_member_id IS NOT NULL) AS linked,
                               count(h.id) FILTER (WHERE cardinality(h.tags) > 0) AS tagged,
                               {tag_cols}
                        FROM down d LEFT JOIN (SELECT * FROM household h) h ON h.grid_id = d.id
                        GROUP BY d.top)
                SELECT g.id, a.households, count(*) OVER () AS total
                FROM agg a JOIN grid g ON g.id = a.top LEFT JOIN grid p ON p.id = g.parent_id
                ORDER BY {order_sql} LIMIT :limit OFFSET :offset"""
        ),
        {**params, "limit": limit, "offset": offset},
    ).all()
    return [r.id for r in rows], (rows[0].total if rows else 0)


def run_case(session, which, kind, grids, kw):  # type: ignore[no-untyped-def]
    """One ledger page, as served or as before: (ids of the items, total)."""
    if kind == "households":
        if which == "served":
            res = ledgers.households(session, grids, **kw)
            return [h["id"] for h in res["items"]], res["total"]
        return previous_households(session, grids, **kw)
    if which == "served":
        res = ledgers.population(session, grids, **kw)
        return [g["id"] for g in res["items"]], res["total"]
    return previous_population(session, grids, **kw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--timeout",
        type=int,
        default=30,
        help="seconds a query may take (cancelled then, and timed as that)",
    )
    args = parser.parse_args()
    print(f"load average at start: {report.load_text()}", flush=True)
    cluster = default_cluster()
    cluster.start()
    engine = create_engine(cluster.url(DB))
    session = Session(engine)
    n = session.scalar(text("SELECT count(*) FROM household"))
    if not n:
        raise SystemExit("no city: run python bench/bench_search.py first")
    street = session.scalar(
        text("SELECT id FROM grid WHERE level = 1 AND valid_to IS NULL ORDER BY code LIMIT 1")
    )
    chief = session.scalar(
        text("SELECT id FROM grid WHERE level = 3 AND valid_to IS NULL ORDER BY code LIMIT 1")
    )
    scopes = {
        "city": None,
        "street": sorted(ledgers.subtree(session, street)),
        "grid": sorted(ledgers.subtree(session, chief)),
    }
    print(
        f"city: {n:,} households; street: {len(scopes['street']):,} grids; grid: {len(scopes['grid'])} grids",
        flush=True,
    )
    session.rollback()
    cases = []
    for name, grids in scopes.items():
        cases += [
            (f"households {name}, page 1", "households", grids, {}),
            (f"households {name}, page 20", "households", grids, {"offset": 950}),
            (f"people {name}, level 4 by code", "people", grids, {"level": 4}),
            (
                f"people {name}, level 4 by households",
                "people",
                grids,
                {"level": 4, "sort": "households", "order": "desc"},
            ),
        ]
    times: dict[str, dict[str, list[float]]] = {c[0]: {"served": [], "previous": []} for c in cases}
    mismatches: list[str] = []
    timed_out: set[str] = set()
    for rnd in range(args.rounds):
        for i, (label, kind, grids, kw) in enumerate(cases):
            order = ("served", "previous") if (rnd + i) % 2 == 0 else ("previous", "served")
            answers = {}
            for which in order:
                session.execute(text(f"SET statement_timeout = {args.timeout * 1000}"))
                started = time.perf_counter()
                try:
                    answers[which] = run_case(session, which, kind, grids, kw)
                except OperationalError:  # cancelled at the timeout
                    answers[which] = None
                    timed_out.add(f"{label} ({which})")
                times[label][which].append((time.perf_counter() - started) * 1000)
                session.rollback()
            if (
                None not in answers.values()
                and answers["served"] != answers["previous"]
                and label not in mismatches
            ):
                mismatches.append(label)
        print(f"round {rnd + 1}/{args.rounds}: load average {report.load_text()}", flush=True)
    print(f"{'case':45} {'served p50/p95 ms':>20} {'previous p50/p95 ms':>22}")
    for label, t in times.items():
        s, p = t["served"], t["previous"]
        print(
            f"{label:45} {pct(s, 50):9.1f} /{pct(s, 95):8.1f} {pct(p, 50):10.1f} /{pct(p, 95):8.1f}"
        )
    every = [v for t in times.values() for v in t["served"]]
    before = [v for t in times.values() for v in t["previous"]]
    print(
        f"all cases: served p95 {pct(every, 95):.1f} ms (mean {statistics.fmean(every):.1f}); "
        f"previous p95 {pct(before, 95):.1f} ms (mean {statistics.fmean(before):.1f})"
    )
    print(f"same items and totals: {len(cases) - len(mismatches)}/{len(cases)} {mismatches}")
    print(f"cancelled at {args.timeout} s: {sorted(timed_out) or 'none'}")
    print(f"load average at end: {report.load_text()}")
    session.close()
    engine.dispose()
    for label in ("households street, page 20", "people city, level 4 by households"):
        served, before = times[label]["served"], times[label]["previous"]
        report.row(
            f"ledger: {label}",
            project=statistics.median(served),
            baseline=statistics.median(before),
            unit="ms",
            target="under 200 ms",
            holds=pct(served, 95) < 200 and label not in mismatches,
            baseline_name="the previous query (every household in scope counted)",
            note=f"p95 {pct(served, 95):.0f} ms vs {pct(before, 95):.0f} ms; {report.summary(served)}",
        )


if __name__ == "__main__":
    main()

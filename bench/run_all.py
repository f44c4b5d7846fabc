"""Run every benchmark once, then print the one table of their rows and how long each took.

The shared synthetic cities (``bench/city.py``) are built first, once (or found kept from an
earlier run of the same code), so that no benchmark spends its time importing a city. Each
benchmark then runs as its own process; its output goes to the terminal and to
``var/bench/<name>.log``. At the end: the wall time of every step, the total, and the table
(``bench/report.py``). The times of the last run are kept in ``var/bench/times.json`` and
printed at the start as the expected total.

    python bench/run_all.py [--only coverage,cases] [--skip partition] [--no-cities] [--quick]

``--quick`` checks the runner end to end in minutes: only the small city is built, and only
the benchmarks named in ``QUICK`` run, each at the reduced size given there (their rows name
the size they ran at, so a quick table is not taken for the full one).

The exit status is 1 when a benchmark failed or a target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import load_text, print_table  # noqa: E402

OUT = ROOT / "var" / "bench"
# The quick ones first; search before ledgers (the ledgers read the search's city); the others
# in the order of their names after these.
ORDER = (
    "coverage",
    "grid_edit",
    "cases",
    "grid_tree",
    "replicas",
    "locate_http",
    "search",
    "ledgers",
    "emap_scale",
    "points",
    "patrols",
    "locate_batch",
    "import",
    "partition",
)
# What a full run adds to a benchmark's command line: the e-map's figures in Chromium (ready,
# heap, the frames of a pan and a zoom) belong in the table with its tiles.
FULL = {"emap_scale": ["--browser"]}
# The benchmarks of a quick run and their reduced sizes; the others need the large city or
# take tens of minutes.
QUICK = {
    "coverage": ["--households", "200000", "--points", "400", "--rounds", "3", "--moves", "20"]
    + ["--city", "small"],
    "grid_edit": ["--repeat", "5"],
    "cases": ["--reports", "50", "--rounds", "2"],
    "replicas": ["--rounds", "1", "--seconds", "3", "--tries", "300", "--burst", "50"],
}


def minutes(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"


def run(name: str, cmd: list[str], env: dict[str, str]) -> tuple[int, float]:
    """Run one step, its output shown and kept in var/bench/<name>.log."""
    started = time.perf_counter()
    print(f"\n=== {name} (load {load_text()}) ===", flush=True)
    with open(OUT / f"{name}.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
        status = proc.wait()
    took = time.perf_counter() - started
    print(f"=== {name}: {'ok' if status == 0 else f'exit {status}'} in {minutes(took)}", flush=True)
    return status, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="benchmarks to run (names without bench_)")
    parser.add_argument("--skip", default="", help="benchmarks to leave out")
    parser.add_argument("--no-cities", action="store_true", help="do not build the shared cities")
    parser.add_argument(
        "--quick", action="store_true", help="the small city and a few benchmarks at small sizes"
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    table = OUT / "table.jsonl"
    table.unlink(missing_ok=True)
    found = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py"))
    names = [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    names = [n for n in names if (not only or n in only) and n not in skip]
    if args.quick:
        names = [n for n in names if n in QUICK]
    times_path = OUT / ("times_quick.json" if args.quick else "times.json")
    before = json.loads(times_path.read_text()) if times_path.exists() else {}
    expected = sum(before.get(n, 0.0) for n in ["cities", *names])
    print(
        f"benchmarks{' (quick sizes)' if args.quick else ''}: {', '.join(names)}; "
        f"load {load_text()}"
        + (f"; the last run of these took {minutes(expected)}" if expected else ""),
        flush=True,
    )
    env = dict(os.environ, GRIDGOV_BENCH_TABLE=str(table), PYTHONUNBUFFERED="1")
    took: dict[str, float] = {}
    failed: list[str] = []
    started = time.perf_counter()
    if not args.no_cities:
        status, took["cities"] = run(
            "cities",
            [
                sys.executable,
                "-c",
                "from bench.city import SMALL, build_all; build_all((SMALL,))"
                if args.quick
                else "from bench.city import build_all; build_all()",
            ],
            env,
        )
        if status:
            failed.append("cities")
    for n in names:
        extra = QUICK[n] if args.quick else FULL.get(n, [])
        status, took[n] = run(
            n, [sys.executable, str(ROOT / "bench" / f"bench_{n}.py"), *extra], env
        )
        if status:
            failed.append(n)
    total = time.perf_counter() - started
    times_path.write_text(json.dumps({**before, **took}, indent=1))
    print("\nwall time of each step:")
    for n, t in took.items():
        print(f"  {n:16s} {minutes(t)}{'  exit ≠ 0' if n in failed else ''}")
    print(f"  {'total':16s} {minutes(total)}; load at the end {load_text()}\n", flush=True)
    missed = print_table(str(table)) if table.exists() else 0
    if failed:
        print(
            f"\nexited non-zero (an error, a wrong answer or a missed target): "
            f"{', '.join(failed)} (see var/bench/<name>.log)"
        )
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())

"""One row per hot path for the table `make bench` prints.

Every benchmark that compares the project with a baseline ends with :func:`row`. The row is
printed at once and, when ``GRIDGOV_BENCH_TABLE`` names a file, appended to it as one JSON line;
``python bench/report.py FILE`` then prints all rows as one table (hot path, project, baseline,
ratio, load, target, holds).

``ratio`` is always "how many times better the project is": baseline / project for times,
project / baseline for rates. A ratio of 1.0 means even; below 1.0 the project loses.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from dataclasses import asdict, dataclass


def load_text() -> str:
    """The 1, 5 and 15 minute load averages and the core count, as one short text."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} / {os.cpu_count()} cores"


@dataclass
class Row:
    hot_path: str
    project: float
    baseline: float | None
    unit: str
    ratio: float | None
    load: str
    target: str
    holds: bool | None
    baseline_name: str = ""
    note: str = ""


def ratio_of(project: float, baseline: float | None, *, higher_is_better: bool) -> float | None:
    if baseline is None or project <= 0 or baseline <= 0:
        return None
    return project / baseline if higher_is_better else baseline / project


def summary(values: list[float]) -> str:
    """min / median of the rounds, as the benchmarks print them."""
    return f"min {min(values):.4g}, median {statistics.median(values):.4g}"


def row(
    hot_path: str,
    *,
    project: float,
    baseline: float | None,
    unit: str,
    higher_is_better: bool = False,
    target: str = "",
    holds: bool | None = None,
    baseline_name: str = "",
    note: str = "",
) -> Row:
    """Record one hot path's median figures (project and baseline measured in the same run)."""
    r = Row(
        hot_path=hot_path,
        project=project,
        baseline=baseline,
        unit=unit,
        ratio=ratio_of(project, baseline, higher_is_better=higher_is_better),
        load=load_text(),
        target=target,
        holds=holds,
        baseline_name=baseline_name,
        note=note,
    )
    ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
    verdict = {True: "holds", False: "MISSED", None: ""}[holds]
    print(
        f"[table] {hot_path}: project {project:.4g} {unit}, baseline {baseline_name} "
        f"{'—' if baseline is None else f'{baseline:.4g}'} {unit}, ratio {ratio}, "
        f"load {r.load}; target {target} {verdict}",
        flush=True,
    )
    path = os.environ.get("GRIDGOV_BENCH_TABLE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    return r


def print_table(path: str) -> int:
    """Print the rows written to ``path``; exit status 1 when a target is missed."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(Row(**json.loads(line)))
    head = ("hot path", "project", "baseline", "ratio", "load", "target", "holds")
    lines = []
    for r in rows:
        base = "—" if r.baseline is None else f"{r.baseline:.4g} {r.unit} ({r.baseline_name})"
        lines.append(
            (
                r.hot_path,
                f"{r.project:.4g} {r.unit}",
                base,
                "—" if r.ratio is None else f"{r.ratio:.2f}",
                r.load,
                r.target,
                {True: "yes", False: "NO", None: "—"}[r.holds],
            )
        )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cells in lines:
        print("| " + " | ".join(cells) + " |")
    return 1 if any(r.holds is False for r in rows) else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/report.py TABLE.jsonl")
    sys.exit(print_table(sys.argv[1]))

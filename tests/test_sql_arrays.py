"""Lists of ids reach PostgreSQL as ``integer[]``.

The driver sends a list of small integers as ``smallint[]``; ``integer = ANY(smallint[])`` has
no single hash function for both sides, so PostgreSQL compares every row with every element
in turn instead of probing a hash (a street's 6,826 grids: seconds instead of milliseconds).
Every ``= ANY(:param)`` over ids therefore casts its list: ``ANY(CAST(:ids AS integer[]))``.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
# Lists that are not ids: states, roles, categories, codes, moments, levels.
NOT_IDS = {"st", "status", "roles", "cats", "codes", "part", "ts", "levels"}
BARE = re.compile(r"(\S+)\s*=\s*ANY\(:(\w+)\)")


def test_every_list_of_ids_is_cast_to_integer_array():
    bare = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for column, param in BARE.findall(line):
                if param in NOT_IDS or column.endswith("::text") or column.endswith("code"):
                    continue
                bare.append(f"{path.relative_to(ROOT)}:{no}: {column} = ANY(:{param})")
    assert bare == [], "cast these lists of ids: ANY(CAST(:x AS integer[]))\n" + "\n".join(bare)


def test_the_driver_sends_small_ids_as_smallint_and_the_cast_makes_them_integer(db_session):
    """Why the cast is needed: a list of small ids arrives as ``smallint[]`` unless cast."""

    def plan(sql: str) -> str:
        rows = db_session.execute(
            text(f"EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM grid g WHERE {sql}"),
            {"ids": list(range(1, 200))},
        ).all()
        return "\n".join(r[0] for r in rows)

    db_session.execute(text("SET LOCAL enable_indexscan = off"))
    db_session.execute(text("SET LOCAL enable_bitmapscan = off"))
    cast = plan("g.id = ANY(CAST(:ids AS integer[]))")
    bare = plan("g.id = ANY(:ids)")
    assert "smallint[]" in bare
    assert "smallint" not in cast and "integer[]" in cast

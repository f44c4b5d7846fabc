"""The sample street and village load whole, and keep the hierarchy's rules."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import text

from app.services.importer import SAMPLE_DIR


def _csv_keys(name: str, *columns: str) -> list[tuple[str, ...]]:
    with (SAMPLE_DIR / name).open(encoding="utf-8") as fh:
        return [tuple(row[c] for c in columns) for row in csv.DictReader(fh)]


def _feature_keys(name: str, prop: str) -> list[tuple[str, ...]]:
    features = json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8"))["features"]
    return [(str(f["properties"][prop]),) for f in features]


# Each table's rows as the keys the sample files name them by.
KEYED = {
    "grid": ("SELECT code FROM grid", _feature_keys("grids.geojson", "code")),
    "household": ("SELECT address FROM household", _csv_keys("households.csv", "address")),
    "worker": ("SELECT code FROM worker", _csv_keys("workers.csv", "code")),
    "grid_assignment": (
        "SELECT w.code, g.code, a.role FROM grid_assignment a JOIN worker w ON w.id = a.worker_id"
        " JOIN grid g ON g.id = a.grid_id",
        _csv_keys("assignments.csv", "worker_code", "grid_code", "role"),
    ),
    "service_point": (
        "SELECT name FROM service_point",
        _feature_keys("service_points.geojson", "name"),
    ),
    "camera": ("SELECT code FROM camera", _feature_keys("cameras.geojson", "code")),
    "department": ("SELECT code FROM department", _csv_keys("departments.csv", "code")),
}


def test_every_record_of_the_files_is_loaded_once(db_session) -> None:  # type: ignore[no-untyped-def]
    """Each record of the sample files is a row of its table, as many times as the files hold it
    (addresses repeat). Rows other tests commit (and remove again) do not count: the test names
    the sample's rows by their keys."""
    for table, (sql, keys) in KEYED.items():
        want = Counter(keys)
        rows = Counter(tuple(str(v) for v in r) for r in db_session.execute(text(sql)))
        assert want and {k: rows[k] for k in want} == dict(want), table


def test_every_household_in_exactly_one_leaf_that_contains_it(db_session) -> None:  # type: ignore[no-untyped-def]
    rows = db_session.execute(
        text(
            """
            SELECT h.id,
                   (SELECT count(*) FROM grid c WHERE c.parent_id = h.grid_id AND c.valid_to IS NULL) AS children,
                   ST_Intersects(g.geom, h.geom) AS inside,
                   (SELECT count(*) FROM grid l WHERE l.valid_to IS NULL
                      AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = l.id AND c.valid_to IS NULL)
                      AND ST_Contains(l.geom, h.geom)) AS leaves_containing
            FROM household h JOIN grid g ON g.id = h.grid_id
            """
        )
    ).all()
    assert rows
    assert all(r.children == 0 for r in rows), "a household sits in a grid that has children"
    assert all(r.inside for r in rows), "a household lies outside its grid"
    assert all(r.leaves_containing == 1 for r in rows), (
        "a household lies in more or fewer than one leaf"
    )


def test_siblings_do_not_overlap_and_children_lie_inside_parents(db_session) -> None:  # type: ignore[no-untyped-def]
    overlaps = db_session.execute(
        text(
            """
            SELECT a.code, b.code FROM grid a JOIN grid b
              ON a.parent_id IS NOT DISTINCT FROM b.parent_id AND a.id < b.id
            WHERE ST_Relate(a.geom, b.geom, '2********')
            """
        )
    ).all()
    assert overlaps == []
    outside = db_session.execute(
        text(
            "SELECT c.code FROM grid c JOIN grid p ON p.id = c.parent_id WHERE NOT ST_CoveredBy(c.geom, p.geom)"
        )
    ).all()
    assert outside == []
    # no gap: the children of each parent cover it (全域有网)
    gaps = db_session.execute(
        text(
            """
            SELECT p.code, ST_Area(ST_Difference(p.geom, ST_Union(c.geom))::geography) AS gap
            FROM grid p JOIN grid c ON c.parent_id = p.id GROUP BY p.id
            HAVING ST_Area(ST_Difference(p.geom, ST_Union(c.geom))::geography) > 0.01
            """
        )
    ).all()
    assert gaps == []


def test_street_follows_the_field_rules(db_session) -> None:  # type: ignore[no-untyped-def]
    street = db_session.execute(text("SELECT id, area_m2 FROM grid WHERE code = '340188001'")).one()
    assert 4.5e6 < street.area_m2 < 5.8e6  # about 5 km²
    communities = db_session.execute(
        text("SELECT count(*) FROM grid WHERE parent_id = :id"), {"id": street.id}
    ).scalar()
    assert communities == 8
    grids = (
        db_session.execute(
            text(
                "SELECT household_count FROM grid WHERE level = 3 AND kind = 'comprehensive' AND code LIKE '340188001%'"
            )
        )
        .scalars()
        .all()
    )
    assert grids and all(300 <= n <= 500 for n in grids)
    micro = (
        db_session.execute(
            text(
                "SELECT household_count FROM grid WHERE level = 4 AND kind = 'comprehensive' AND code LIKE '340188001%'"
            )
        )
        .scalars()
        .all()
    )
    assert micro and all(50 <= n <= 80 for n in micro)
    linked = (
        db_session.execute(
            text(
                """SELECT count(*) FROM household h JOIN grid g ON g.id = h.grid_id
               WHERE g.code LIKE '340188001%' AND g.kind = 'comprehensive' GROUP BY h.linked_member_id"""
            )
        )
        .scalars()
        .all()
    )
    assert linked and all(10 <= n <= 20 for n in linked)
    households = db_session.execute(
        text("SELECT household_count FROM grid WHERE id = :id"), {"id": street.id}
    ).scalar()
    full_time = db_session.execute(
        text(
            "SELECT count(DISTINCT a.worker_id) FROM grid_assignment a JOIN grid g ON g.id = a.grid_id WHERE a.role = 'worker_full' AND g.code LIKE '340188001%'"
        )
    ).scalar()
    assert (
        0.7 <= households / full_time / 100 <= 1.3
    )  # about one full-time worker per 100 households
    cameras = db_session.execute(text("SELECT count(*) FROM camera")).scalar()
    assert 200 <= cameras <= 500


def test_village_has_85_households_256_people_in_three_grids_of_patches(db_session) -> None:  # type: ignore[no-untyped-def]
    village = db_session.execute(
        text("SELECT id, household_count FROM grid WHERE code = '340188101201'")
    ).one()
    assert village.household_count == 85
    people = db_session.execute(
        text(
            "SELECT sum(h.people) FROM household h JOIN grid g ON g.id = h.grid_id WHERE g.code LIKE '340188101201%'"
        )
    ).scalar()
    assert people == 256
    groups = db_session.execute(
        text("SELECT id, household_count FROM grid WHERE parent_id = :id"), {"id": village.id}
    ).all()
    assert len(groups) == 3 and all(25 <= g.household_count <= 30 for g in groups)
    for g in groups:
        patches = db_session.execute(
            text(
                """SELECT p.household_count,
                          (SELECT count(DISTINCT h.linked_member_id) FROM household h WHERE h.grid_id = p.id) AS members
                   FROM grid p WHERE p.parent_id = :id"""
            ),
            {"id": g.id},
        ).all()
        assert patches and all(5 <= p.household_count <= 10 and p.members == 1 for p in patches)


def test_generator_is_deterministic(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE_DIR / "generate.py")
    gen = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["sample_generate"] = gen
    spec.loader.exec_module(gen)  # type: ignore[union-attr]
    gen.HERE = tmp_path
    g = gen.Generator()
    g.street()
    g.village()
    g.write()
    for name in ("grids.geojson", "households.csv", "cameras.geojson"):
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), name

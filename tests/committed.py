"""Put the committed test database back after a test that wrote through the live server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

# Tables whose rows the test may add (deleted again), and those whose grid_id may move.
ADDED = ("grid_state", "grid_change", "grid_assignment", "camera_event", '"case"')
PLACED = ("household", "camera", "service_point", '"case"')
GRID_STATE = (
    "name, kind, parent_id, ST_AsEWKB(geom), area_m2, version, valid_from, valid_to, "
    "household_count"
)


@contextmanager
def committed_state_restored(database_url: str) -> Iterator[None]:
    """Note the committed grid data, run the block, then put the data back as it was.

    For tests that edit through the live server (which commits): new grids, changes, states
    and assignments are deleted again, households and places go back to their grids, and the
    grids that existed get their names, versions, validity and counts back.
    """
    engine = create_engine(database_url)
    with engine.connect() as conn:
        marks = {
            table: conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one()
            for table in ("grid", *ADDED)
        }
        grids = conn.execute(text(f"SELECT id, {GRID_STATE} FROM grid")).all()
        placed = {t: conn.execute(text(f"SELECT id, grid_id FROM {t}")).all() for t in PLACED}
    try:
        yield
    finally:
        with engine.begin() as conn:
            for table in ADDED:
                conn.execute(text(f"DELETE FROM {table} WHERE id > :m"), {"m": marks[table]})
            for table, rows in placed.items():
                conn.execute(
                    text(
                        f"UPDATE {table} t SET grid_id = v.g FROM (SELECT unnest(CAST(:ids AS int[])) "
                        "AS id, unnest(CAST(:gids AS int[])) AS g) v "
                        "WHERE t.id = v.id AND t.grid_id IS DISTINCT FROM v.g"
                    ),
                    {"ids": [r[0] for r in rows], "gids": [r[1] for r in rows]},
                )
            for gid, *state in grids:
                conn.execute(
                    text(
                        "UPDATE grid SET name = :n, kind = :k, parent_id = :p, geom = "
                        "ST_GeomFromEWKB(:g), area_m2 = :a, version = :v, valid_from = :f, "
                        "valid_to = :t, household_count = :c "
                        f"WHERE id = :id AND ({GRID_STATE}) IS DISTINCT FROM "
                        "(:n, :k, :p, :g, :a, :v, :f, :t, :c)"
                    ),
                    dict(
                        zip(("n", "k", "p", "g", "a", "v", "f", "t", "c"), state, strict=True),
                        id=gid,
                    ),
                )
            conn.execute(text("DELETE FROM grid WHERE id > :m"), {"m": marks["grid"]})
        engine.dispose()

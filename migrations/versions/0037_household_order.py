"""Households lie in the order of their place, so that a map tile reads a few pages

Revision ID: 0037_household_order
Revises: 0036_dense_tile_geometry
Create Date: 2026-12-06 03:00:00

A map tile of bare household points (zoom 16 and above) and a grid's household ledger read the
households of a small area. They lay in the order they were imported, which follows the source
file, not the map: in the 100k-micro-grid city the 1,500 households of a z16 tile lay on about
1,480 pages of 8 kB, so that a tile nobody had looked at lately took 80–130 ms of disk reads in
PostgreSQL (7–12 ms once read).

The household import now writes each batch along a space-filling curve (``gridgov import``,
``app.services.importer.points``). This upgrade writes the rows already there again in the same
kind of order: PostGIS sorts points along a Hilbert curve (``ORDER BY geom``), through a b-tree
index made for the rewrite and dropped after it (``CLUSTER`` sorts the table in one pass and
builds every index again). The table is locked while it is written: 41 s for the 100k city's
two million households on a two-core machine (the households of that z16 tile then lay on 41
pages instead of 1,449). Nothing but the rows' places on disk changes, so the downgrade has
nothing to undo.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0037_household_order"
down_revision: str | Sequence[str] | None = "0036_dense_tile_geometry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER_INDEX = "gridgov_household_place_order"


def upgrade() -> None:
    op.execute(f"CREATE INDEX {ORDER_INDEX} ON household USING btree (geom)")
    op.execute(f"CLUSTER household USING {ORDER_INDEX}")
    op.execute(f"DROP INDEX {ORDER_INDEX}")
    op.execute("ANALYZE household")


def downgrade() -> None:
    pass

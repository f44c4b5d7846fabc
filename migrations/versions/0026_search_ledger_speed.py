"""Codes found from their start; the population ledger paged by the kept household counts

Revision ID: 0026_search_ledger_speed
Revises: 0023_search_speed
Create Date: 2026-12-05 04:00:00

- ``ix_*_code_pattern``: B-trees with ``text_pattern_ops`` on the codes of grids (current
  ones), workers, cases and cameras, so that the search box looks a code or number up from its
  start (``code LIKE 'W0001%'``: a range scan) before the trigram index, whose digit trigrams
  (``001``, ``010``) are shared by most codes.
- ``ix_grid_name_current``, ``ix_worker_name``: B-trees on the names, so that a name typed
  whole is found by one lookup before any trigram scan.
- ``ix_household_address_id`` again, with the grid beside (address, id) (``INCLUDE``): a
  street's household ledger in address order reads the page's ids from the index alone,
  skipping the households of other grids without reading them from the table.
- ``ix_household_grid_id`` again, carrying people, linked member and tags (``INCLUDE``): the
  population ledger counts a page of grids' households from the index alone.
- ``ix_household_cell_grid_total``: the households and people kept per leaf grid at zoom 10
  (``household_cell``), by grid: a ledger's total over a street's thousands of grids is an
  index-only scan of a small index instead of a pass over every cell.
- ``ix_grid_level_households``: current grids by level, household count and id, so that the
  population ledger sorted by households reads a page from the index instead of summing every
  grid's households first.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026_search_ledger_speed"
down_revision: str | Sequence[str] | None = "0023_search_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0015_tile_speed"  # household_cell

CARRIED = "people, linked_member_id, tags"
PATTERN_INDEXES = {
    "ix_grid_code_pattern": ("grid", "WHERE valid_to IS NULL"),
    "ix_worker_code_pattern": ("worker", ""),
    "ix_case_code_pattern": ('"case"', ""),
    "ix_camera_code_pattern": ("camera", ""),
}


def upgrade() -> None:
    for name, (table, where) in PATTERN_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} (code text_pattern_ops) {where}")
    op.execute("DROP INDEX ix_household_address_id")
    op.execute("CREATE INDEX ix_household_address_id ON household (address, id) INCLUDE (grid_id)")
    op.execute("DROP INDEX ix_household_grid_id")
    op.execute(f"CREATE INDEX ix_household_grid_id ON household (grid_id) INCLUDE ({CARRIED})")
    op.execute(
        "CREATE INDEX ix_household_cell_grid_total ON household_cell (grid_id) "
        "INCLUDE (households, people) WHERE z = 10"
    )
    op.execute("CREATE INDEX ix_grid_name_current ON grid (name) WHERE valid_to IS NULL")
    op.execute("CREATE INDEX ix_worker_name ON worker (name)")
    op.execute(
        "CREATE INDEX ix_grid_level_households ON grid (level, household_count, id) "
        "WHERE valid_to IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_grid_level_households")
    op.execute("DROP INDEX IF EXISTS ix_household_cell_grid_total")
    op.execute("DROP INDEX ix_household_address_id")
    op.execute("CREATE INDEX ix_household_address_id ON household (address, id)")
    op.execute("DROP INDEX ix_household_grid_id")
    op.execute("CREATE INDEX ix_household_grid_id ON household (grid_id)")
    op.execute("DROP INDEX IF EXISTS ix_worker_name")
    op.execute("DROP INDEX IF EXISTS ix_grid_name_current")
    for name in PATTERN_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")

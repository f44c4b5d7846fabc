"""Trigram indexes for the search box

Revision ID: 0014_search
Revises: 0009_override_category_codes
Create Date: 2026-12-04 21:40:00

The search box (``GET /api/search``) finds grids, households by address, workers and party
members, cases, service points and cameras by any part of a name, code or address, and forgives
a typo: ``pg_trgm`` (a trusted extension, so the database's owner may create it) and a GIN
trigram index on every column searched. A household is found by one text made of its address,
building, unit and room (``household_search_text``, immutable so that it can be indexed).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_search"
down_revision: str | Sequence[str] | None = "0009_override_category_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT_FUNCTION = """
CREATE FUNCTION household_search_text(address text, building text, unit text, room text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(address, ''),
                    coalesce(building, '') || coalesce(unit || '单元', '') || coalesce(room || '室', ''))
$$
"""

INDEXES = {
    "ix_grid_name_trgm": ("grid", "name"),
    "ix_grid_code_trgm": ("grid", "code"),
    "ix_household_search_trgm": (
        "household",
        "household_search_text(address, building, unit, room)",
    ),
    "ix_worker_name_trgm": ("worker", "name"),
    "ix_worker_code_trgm": ("worker", "code"),
    "ix_case_code_trgm": ('"case"', "code"),
    "ix_service_point_name_trgm": ("service_point", "name"),
    "ix_camera_code_trgm": ("camera", "code"),
    "ix_camera_name_trgm": ("camera", "name"),
}


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(TEXT_FUNCTION)
    for name, (table, expr) in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} USING gin (({expr}) gin_trgm_ops)")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute("DROP FUNCTION IF EXISTS household_search_text(text, text, text, text)")
    # The extension stays: other objects of the database may use it.

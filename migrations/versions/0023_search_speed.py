"""Fast typo search on millions of addresses; ledger pages in address order

Revision ID: 0023_search_speed
Revises: 0014_search
Create Date: 2026-12-05 00:30:00

- ``search_place``: every distinct place of the households — the search text without its unit
  and room (``household_search_place``: ``…馨苑小区1栋1单元101室`` → ``…馨苑小区1栋``) — per
  leaf grid, with how many households it holds. A city of two million households has some
  fifty thousand, so a misspelt address is looked up there first (a GIN trigram index over a
  small table, its common unit and room trigrams left out), and then only the households of
  the few places found are compared with the query. Statement triggers with transition tables
  keep it exact on every insert (a COPY of a whole import is one statement), update and delete
  of households.
- ``ix_household_address_id``: the household ledger's default order (address, then id), so a
  page is read from the index instead of sorting every household in scope.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023_search_speed"
down_revision: str | Sequence[str] | None = "0014_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLACE_FUNCTION = r"""
CREATE FUNCTION household_search_place(search_text text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(search_text, '([0-9]+单元)?([0-9]+室)?$', '')
$$
"""

PLACE = "household_search_place(household_search_text(address, building, unit, room))"


def _delta(source: str) -> str:
    """Add ``source`` (rows place, grid_id, sign) to search_place."""
    return f"""
    INSERT INTO search_place AS p (place, grid_id, households)
    SELECT place, grid_id, sum(sign)::integer FROM ({source}) s
    GROUP BY place, grid_id HAVING sum(sign) <> 0 ORDER BY place, grid_id
    ON CONFLICT (place, grid_id) DO UPDATE SET households = p.households + EXCLUDED.households"""


def _emptied(source: str) -> str:
    """Remove the places that ``source`` (rows place, grid_id) emptied."""
    return f"""
    DELETE FROM search_place p USING (SELECT DISTINCT place, grid_id FROM ({source}) s) k
    WHERE p.place = k.place AND p.grid_id = k.grid_id AND p.households <= 0"""


PLACE_TRIGGER = f"""
CREATE FUNCTION gridgov_search_places() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_delta(f"SELECT {PLACE} AS place, grid_id, 1 AS sign FROM new_rows")};
  ELSIF TG_OP = 'DELETE' THEN
    {_delta(f"SELECT {PLACE} AS place, grid_id, -1 AS sign FROM old_rows")};
    {_emptied(f"SELECT {PLACE} AS place, grid_id FROM old_rows")};
  ELSE
    {
    _delta(
        f"SELECT {PLACE} AS place, grid_id, 1 AS sign FROM new_rows "
        f"UNION ALL SELECT {PLACE}, grid_id, -1 FROM old_rows"
    )
};
    {_emptied(f"SELECT {PLACE} AS place, grid_id FROM old_rows")};
  END IF;
  RETURN NULL;
END $$
"""

EVENTS = (
    ("INSERT", "NEW TABLE AS new_rows"),
    ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("DELETE", "OLD TABLE AS old_rows"),
)


def upgrade() -> None:
    op.execute(PLACE_FUNCTION)
    op.execute(
        """
        CREATE TABLE search_place (
            place text NOT NULL,
            grid_id integer NOT NULL,
            households integer NOT NULL,
            PRIMARY KEY (place, grid_id)
        )
        """
    )
    op.execute(PLACE_TRIGGER)
    for event, refs in EVENTS:
        op.execute(
            f"CREATE TRIGGER trg_search_places_{event.lower()} AFTER {event} ON household "
            f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION gridgov_search_places()"
        )
    op.execute(
        f"INSERT INTO search_place (place, grid_id, households) "
        f"SELECT {PLACE}, grid_id, count(*) FROM household GROUP BY 1, 2"
    )
    op.execute("CREATE INDEX ix_search_place_trgm ON search_place USING gin (place gin_trgm_ops)")
    op.execute("CREATE INDEX ix_household_address_id ON household (address, id)")
    op.execute("ANALYZE search_place")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_household_address_id")
    for event, _refs in EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS trg_search_places_{event.lower()} ON household")
    op.execute("DROP FUNCTION IF EXISTS gridgov_search_places")
    op.execute("DROP TABLE IF EXISTS search_place")
    op.execute("DROP FUNCTION IF EXISTS household_search_place(text)")

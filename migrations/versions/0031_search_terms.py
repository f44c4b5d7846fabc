"""The distinct terms of the households' places, for a misspelt address

Revision ID: 0031_search_terms
Revises: 0026_search_ledger_speed
Create Date: 2026-12-05 07:00:00

- ``household_search_term(place)``: a place (revision 0023) without its building number
  (``…蓝晖春家园1栋`` → ``…蓝晖春家园``): the street, community and estate or road.
- ``search_term``: every distinct term with how many places hold it — some five thousand for
  two million households. A misspelt address is compared with these first (a GIN trigram index
  over a small table whose texts carry no building, unit or room digits, the trigrams shared by
  most addresses), and only the places of the few terms found are read, through the B-tree on
  ``household_search_term(place)`` of ``search_place``. Statement triggers on ``search_place``
  keep it exact: every insert and delete of places (which the triggers of the households make)
  adds or takes away its terms. A place's text is its key and never changes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031_search_terms"
down_revision: str | Sequence[str] | None = "0026_search_ledger_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERM_FUNCTION = r"""
CREATE FUNCTION household_search_term(place text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(place, '[0-9]+(栋|幢|号楼|号)$', '')
$$
"""

TERM_TRIGGER = """
CREATE FUNCTION gridgov_search_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO search_term AS t (term, places)
    SELECT household_search_term(place), count(*)::integer FROM new_rows GROUP BY 1 ORDER BY 1
    ON CONFLICT (term) DO UPDATE SET places = t.places + EXCLUDED.places;
  ELSE
    UPDATE search_term t SET places = t.places - d.n
    FROM (SELECT household_search_term(place) AS term, count(*)::integer AS n
          FROM old_rows GROUP BY 1) d
    WHERE t.term = d.term;
    DELETE FROM search_term t
    USING (SELECT DISTINCT household_search_term(place) AS term FROM old_rows) d
    WHERE t.term = d.term AND t.places <= 0;
  END IF;
  RETURN NULL;
END $$
"""

EVENTS = (("INSERT", "NEW TABLE AS new_rows"), ("DELETE", "OLD TABLE AS old_rows"))


def upgrade() -> None:
    op.execute(TERM_FUNCTION)
    op.execute(
        """
        CREATE TABLE search_term (
            term text PRIMARY KEY,
            places integer NOT NULL
        )
        """
    )
    op.execute(TERM_TRIGGER)
    for event, refs in EVENTS:
        op.execute(
            f"CREATE TRIGGER trg_search_terms_{event.lower()} AFTER {event} ON search_place "
            f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION gridgov_search_terms()"
        )
    op.execute(
        "INSERT INTO search_term (term, places) "
        "SELECT household_search_term(place), count(*) FROM search_place GROUP BY 1"
    )
    op.execute("CREATE INDEX ix_search_term_trgm ON search_term USING gin (term gin_trgm_ops)")
    op.execute(
        "CREATE INDEX ix_search_place_term ON search_place (household_search_term(place), place)"
    )
    op.execute("ANALYZE search_term")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_search_place_term")
    for event, _refs in EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS trg_search_terms_{event.lower()} ON search_place")
    op.execute("DROP FUNCTION IF EXISTS gridgov_search_terms")
    op.execute("DROP TABLE IF EXISTS search_term")
    op.execute("DROP FUNCTION IF EXISTS household_search_term(text)")

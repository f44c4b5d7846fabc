"""The app's role may have the statistics of named tables gathered, so an import's plans are
right at once

Revision ID: 0039_import_analyze
Revises: 0038_subtree_cells
Create Date: 2026-12-06 18:00:00

An import runs as the app's role, which owns no table and so may not ``ANALYZE`` one
(PostgreSQL skips it with a warning). After a large import the planner went on with the old
statistics — on a fresh database, those of empty tables — until autovacuum analysed the tables,
up to a minute later; in that window the field KPIs and the visit coverage of a city-sized import
took nested-loop plans that ran for seconds.

``gridgov_analyze(tables text[])`` runs as its owner (``SECURITY DEFINER``, the schema's
owner) and analyses those of the named tables that are ordinary or partitioned tables of the
schema ``public``. The names are looked up in the catalogue, never spliced into SQL, and the
function does nothing else, so the most a caller can do with it is spend the time of an
``ANALYZE``. Its ``search_path`` is fixed to the catalogue and ``public``. Like every function of
the schema it may be run by the roles that may connect (the owner and the app, app/db_roles.py).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0039_import_analyze"
down_revision: str | Sequence[str] | None = "0038_subtree_cells"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYZE_FUNCTION = """
CREATE FUNCTION gridgov_analyze(tables text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS rel
    FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY(tables)
    ORDER BY c.relname
  LOOP
    EXECUTE format('ANALYZE %s', r.rel);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$
"""


def upgrade() -> None:
    op.execute(ANALYZE_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION gridgov_analyze(text[])")

"""Every grid carries its materialised path (the ids from the top-level grid down to itself)

Revision ID: 0027_grid_path
Revises: 0024_networks
Create Date: 2026-12-05 04:00:00

``grid.path`` lets the grid tree (``app.services.grid_tree``) find a subtree with one probe of a
GIN index (``path @> ARRAY[id]``, or ``path && ids`` for several roots) and the ancestors of a
grid by reading one row, instead of walking ``parent_id`` level by level. Triggers keep it exact
whatever writes grids — the ORM, raw SQL, the importer's COPY: a row inserted, or whose
``parent_id`` changes, takes its parent's path and its own id, and a grid that moves carries its
whole subtree (history rows included) along. A parent that is the grid itself or below it is
refused (a cycle). Nothing else writes the column.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027_grid_path"
down_revision: str | Sequence[str] | None = "0024_networks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PATH_FUNCTION = """
CREATE FUNCTION gridgov_grid_path() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  above integer[];
BEGIN
  IF NEW.parent_id IS NULL THEN
    NEW.path := ARRAY[NEW.id];
  ELSE
    SELECT path INTO above FROM grid WHERE id = NEW.parent_id;
    IF above IS NULL THEN
      RAISE EXCEPTION 'grid % has no parent %', NEW.id, NEW.parent_id
        USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NEW.id = ANY(above) THEN
      RAISE EXCEPTION 'grid % cannot lie below itself (parent %)', NEW.id, NEW.parent_id
        USING ERRCODE = 'check_violation';
    END IF;
    NEW.path := above || NEW.id;
  END IF;
  RETURN NEW;
END $$
"""

SUBTREE_FUNCTION = """
CREATE FUNCTION gridgov_grid_subtree_path() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE grid SET path = NEW.path || path[cardinality(OLD.path) + 1:]
  WHERE path @> ARRAY[NEW.id] AND id <> NEW.id;
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE grid ADD COLUMN path integer[]")
    op.execute(
        """
        WITH RECURSIVE t AS (
            SELECT id, ARRAY[id] AS path FROM grid WHERE parent_id IS NULL
            UNION ALL
            SELECT g.id, t.path || g.id FROM grid g JOIN t ON g.parent_id = t.id
        )
        UPDATE grid SET path = t.path FROM t WHERE grid.id = t.id
        """
    )
    op.execute("ALTER TABLE grid ALTER COLUMN path SET NOT NULL")
    # Without the pending list (fastupdate): an edit writes its entries at once, and a read
    # never scans a list of recent ones (which, grown by a recount's updates, costs each
    # subtree several milliseconds).
    op.execute("CREATE INDEX ix_grid_path ON grid USING gin (path) WITH (fastupdate = off)")
    op.execute(PATH_FUNCTION)
    op.execute(SUBTREE_FUNCTION)
    op.execute(
        "CREATE TRIGGER trg_grid_path BEFORE INSERT OR UPDATE OF parent_id ON grid "
        "FOR EACH ROW EXECUTE FUNCTION gridgov_grid_path()"
    )
    op.execute(
        "CREATE TRIGGER trg_grid_subtree_path AFTER UPDATE OF parent_id ON grid FOR EACH ROW "
        "WHEN (OLD.path IS DISTINCT FROM NEW.path) EXECUTE FUNCTION gridgov_grid_subtree_path()"
    )
    op.execute("ANALYZE grid")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_grid_subtree_path ON grid")
    op.execute("DROP TRIGGER IF EXISTS trg_grid_path ON grid")
    op.execute("DROP FUNCTION IF EXISTS gridgov_grid_subtree_path()")
    op.execute("DROP FUNCTION IF EXISTS gridgov_grid_path()")
    op.execute("DROP INDEX IF EXISTS ix_grid_path")
    op.execute("ALTER TABLE grid DROP COLUMN path")

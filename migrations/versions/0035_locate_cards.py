"""Each grid keeps a locate card: whether it is a current leaf and who is assigned to it

Revision ID: 0035_locate_cards
Revises: 0027_grid_path
Create Date: 2026-12-06 00:00:00

A single locate reads, for every grid covering the point, whether it is a leaf (no current
child) and the people assigned to it (role, name, phone, on duty). Working both out on every
request — a probe for a current child and a join of assignments to workers for each covering
grid, all put into JSON — cost PostgreSQL about as much again as the point query itself. The
``locate_card`` table keeps them ready, one row per grid: ``is_leaf`` and ``people`` (a JSON
array ordered by worker id), so the locate reads the covering grids and their cards by key.

Statement triggers keep the cards exact in the transaction of whatever writes: a grid inserted,
deleted, or whose parent or validity changes (its card, its old and new parent's); an assignment
inserted, changed or deleted (its grids' cards); a worker whose name, phone or duty changes (the
cards of the grids it is assigned to; a worker deleted takes its assignments with it). Each
statement refreshes the cards it touched once, in one set-based statement, so a bulk import
(COPY or many-row INSERTs) costs one refresh per statement, not one per row. A statement that
changes a card takes an advisory lock held until its transaction ends, so two transactions
changing cards at once are ordered and the later one builds its cards from what the earlier
committed (a statement that changes no card, such as a household count refresh, takes none).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0035_locate_cards"
down_revision: str | Sequence[str] | None = "0027_grid_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The advisory lock (two-key form) every writer of cards holds from its first refresh until it
#: commits: see ``LOCK``.
CARD_LOCK = 7335

REFRESH_FUNCTION = """
CREATE FUNCTION gridgov_locate_card_refresh(ids integer[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(ids) = 0 THEN
    RETURN;
  END IF;
  DELETE FROM locate_card c
  WHERE c.grid_id = ANY(ids) AND NOT EXISTS (SELECT 1 FROM grid g WHERE g.id = c.grid_id);
  INSERT INTO locate_card AS c (grid_id, is_leaf, people)
  SELECT g.id,
         NOT EXISTS (SELECT 1 FROM grid k WHERE k.parent_id = g.id AND k.valid_to IS NULL),
         coalesce(
           (SELECT json_agg(p ORDER BY p.worker_id, p.role)
            FROM (SELECT w.id AS worker_id, w.name, a.role, w.phone, w.on_duty
                  FROM grid_assignment a JOIN worker w ON w.id = a.worker_id
                  WHERE a.grid_id = g.id) AS p),
           '[]'::json)
  FROM grid g
  WHERE g.id = ANY(ids)
  ON CONFLICT (grid_id) DO UPDATE SET is_leaf = EXCLUDED.is_leaf, people = EXCLUDED.people
  WHERE c.is_leaf IS DISTINCT FROM EXCLUDED.is_leaf
     OR c.people::text IS DISTINCT FROM EXCLUDED.people::text;
END $$
"""

#: Taken by each trigger before it reads anything another transaction may be changing. Two
#: writers at once could otherwise each build a card from a snapshot without the other's
#: change (a worker's new phone and a new assignment of that worker, say), and the card
#: would keep whichever committed last. With the lock held until commit, each refresh's
#: statements (a new snapshot each, in READ COMMITTED, which every write of the app runs in)
#: see every change committed before it.
LOCK = f"PERFORM pg_advisory_xact_lock({CARD_LOCK}, 0);"

#: The end of a trigger that collected the grids whose cards its statement changed in ``ids``.
REFRESH_IDS = f"""  IF cardinality(ids) > 0 THEN
    {LOCK}
    PERFORM gridgov_locate_card_refresh(ids);
  END IF;"""

GRID_FUNCTION = f"""
CREATE FUNCTION gridgov_locate_card_grid() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ids integer[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    ids := ARRAY(
      SELECT id FROM new_rows UNION SELECT parent_id FROM new_rows WHERE parent_id IS NOT NULL);
  ELSIF TG_OP = 'DELETE' THEN
    ids := ARRAY(
      SELECT id FROM old_rows UNION SELECT parent_id FROM old_rows WHERE parent_id IS NOT NULL);
  ELSE
    -- Only a changed parent or validity changes a card (a household count refresh touches
    -- every grid and changes none).
    ids := ARRAY(
      SELECT DISTINCT v.id
      FROM old_rows o JOIN new_rows n ON n.id = o.id,
           LATERAL (VALUES (n.id), (o.parent_id), (n.parent_id)) AS v(id)
      WHERE v.id IS NOT NULL
        AND (n.parent_id IS DISTINCT FROM o.parent_id OR n.valid_to IS DISTINCT FROM o.valid_to));
  END IF;
{REFRESH_IDS}
  RETURN NULL;
END $$
"""

ASSIGNMENT_FUNCTION = f"""
CREATE FUNCTION gridgov_locate_card_assignment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ids integer[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    ids := ARRAY(SELECT DISTINCT grid_id FROM new_rows);
  ELSIF TG_OP = 'DELETE' THEN
    ids := ARRAY(SELECT DISTINCT grid_id FROM old_rows);
  ELSE
    ids := ARRAY(SELECT grid_id FROM old_rows UNION SELECT grid_id FROM new_rows);
  END IF;
{REFRESH_IDS}
  RETURN NULL;
END $$
"""

WORKER_FUNCTION = f"""
CREATE FUNCTION gridgov_locate_card_worker() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed integer[];
BEGIN
  changed := ARRAY(
    SELECT n.id FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE n.name IS DISTINCT FROM o.name OR n.phone IS DISTINCT FROM o.phone
       OR n.on_duty IS DISTINCT FROM o.on_duty);
  IF cardinality(changed) > 0 THEN
    {LOCK}
    -- The grids are read after the lock: an assignment of these workers committed meanwhile
    -- is among them.
    PERFORM gridgov_locate_card_refresh(ARRAY(
      SELECT DISTINCT grid_id FROM grid_assignment WHERE worker_id = ANY(changed)));
  END IF;
  RETURN NULL;
END $$
"""

#: (table, event, transition tables, function)
TRIGGERS = (
    ("grid", "INSERT", "NEW TABLE AS new_rows", "gridgov_locate_card_grid"),
    ("grid", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", "gridgov_locate_card_grid"),
    ("grid", "DELETE", "OLD TABLE AS old_rows", "gridgov_locate_card_grid"),
    ("grid_assignment", "INSERT", "NEW TABLE AS new_rows", "gridgov_locate_card_assignment"),
    (
        "grid_assignment",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "gridgov_locate_card_assignment",
    ),
    ("grid_assignment", "DELETE", "OLD TABLE AS old_rows", "gridgov_locate_card_assignment"),
    (
        "worker",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "gridgov_locate_card_worker",
    ),
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE locate_card (
            grid_id integer PRIMARY KEY,
            is_leaf boolean NOT NULL,
            people json NOT NULL
        )
        """
    )
    for sql in (REFRESH_FUNCTION, GRID_FUNCTION, ASSIGNMENT_FUNCTION, WORKER_FUNCTION):
        op.execute(sql)
    for table, event, refs, function in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER trg_{table}_locate_card_{event.lower()} AFTER {event} ON {table} "
            f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    # What is there already.
    op.execute("SELECT gridgov_locate_card_refresh(ARRAY(SELECT id FROM grid))")
    op.execute("ANALYZE locate_card")


def downgrade() -> None:
    for table, event, _refs, _function in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_locate_card_{event.lower()} ON {table}")
    for name in ("worker", "assignment", "grid", "refresh"):
        op.execute(f"DROP FUNCTION IF EXISTS gridgov_locate_card_{name}")
    op.execute("DROP TABLE IF EXISTS locate_card")

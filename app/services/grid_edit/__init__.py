"""Edit the grid map without ever breaking the hierarchy: create, reshape, delete, split, merge,
divide, undo.

Each function is one business operation inside the caller's transaction (wrap it in
``app.db.transaction``; a dry run is the same call followed by a rollback, so a preview shows
exactly what saving would do).

How the hierarchy is kept:
- Every geometry goes through :mod:`gis.validate` and :mod:`gis.topology` on the server.
- Edits under one parent are serialised: each takes a transaction-level advisory lock on the
  parent (and on the grids it changes, as parents of their children), in ascending order. Then
  the grid rows are locked and their versions compared with the version the edit was based on;
  a stale edit gets :class:`StaleVersion` (409) with the current version. Nothing is overwritten
  silently, and two edits can never each validate against the other's old geometry.
- What a grid carries moves with its territory: households, cameras, service points, open
  cases (closed ones keep their grid for the statistics) and child grids. Points that fall in
  no child of a parent (a gap) are held by the parent itself until a child covers them again.
- Every edit is recorded in ``grid_change`` with each move (id, from, to); grids changed in
  place keep their previous state in ``grid_state``; grids replaced by a split or merge stay as
  rows with ``valid_to`` set. That is what the history and :func:`undo_change` read.

Where the parts live: ``base`` (errors, options, locking and loading), ``codes`` (codes of new
grids), ``moves`` (what an edit moves and how the change is recorded), ``operations`` (create,
reshape, delete, split, merge), ``division`` (a grid divided into child grids at once), ``undo``,
``reads`` (integrity, history, the change list), ``running`` (an edit's transaction or
dry run).
"""

from app.errors import ValidationFailed
from app.services.grid_edit.base import (
    FINISHED_CASE_STATES,
    LOCK_NAMESPACE,
    MOVE_NAMES,
    POINT_TABLES,
    EditOptions,
    GridRetired,
    StaleVersion,
    UndoRefused,
    VersionRequired,
)
from app.services.grid_edit.codes import code_pattern, next_codes
from app.services.grid_edit.division import Division, DivisionPlan, divide_grid
from app.services.grid_edit.operations import (
    create_grid,
    delete_grid,
    merge_grids,
    split_grid,
    update_grid,
)
from app.services.grid_edit.reads import history, integrity, list_changes
from app.services.grid_edit.running import run_edit
from app.services.grid_edit.undo import undo_change
from gis import topology

__all__ = [
    "FINISHED_CASE_STATES",
    "LOCK_NAMESPACE",
    "MOVE_NAMES",
    "POINT_TABLES",
    "Division",
    "DivisionPlan",
    "EditOptions",
    "GridRetired",
    "StaleVersion",
    "UndoRefused",
    "ValidationFailed",
    "VersionRequired",
    "code_pattern",
    "create_grid",
    "delete_grid",
    "divide_grid",
    "history",
    "integrity",
    "list_changes",
    "merge_grids",
    "next_codes",
    "run_edit",
    "split_grid",
    "topology",
    "undo_change",
    "update_grid",
]

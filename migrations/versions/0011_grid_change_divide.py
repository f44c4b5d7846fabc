"""Record automatic divisions as grid changes ('divide')

Revision ID: 0011_grid_change_divide
Revises: 7c1e5b2d9a40
Create Date: 2026-12-04 21:45:00

A division of a grid into child grids (and a cut into 片区) is written through the grid-edit
path like a split: it is listed in the history and can be undone.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_grid_change_divide"
down_revision: str | Sequence[str] | None = "7c1e5b2d9a40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "'create', 'update', 'delete', 'split', 'merge', 'undo'"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_grid_change_kind_known"), "grid_change", type_="check")
    op.create_check_constraint(
        op.f("ck_grid_change_kind_known"),
        "grid_change",
        "kind IN ('create', 'update', 'delete', 'split', 'merge', 'divide', 'undo')",
    )


def downgrade() -> None:
    # The older schema cannot name a division: its records (and the undos of divisions) go;
    # the grids they made or retired stay as they are.
    op.execute("UPDATE grid_change SET undone_by_id = NULL WHERE kind = 'divide'")
    op.execute(
        "DELETE FROM grid_change WHERE kind = 'undo' AND undoes_id IN "
        "(SELECT id FROM grid_change WHERE kind = 'divide')"
    )
    op.execute("DELETE FROM grid_change WHERE kind = 'divide'")
    op.drop_constraint(op.f("ck_grid_change_kind_known"), "grid_change", type_="check")
    op.create_check_constraint(
        op.f("ck_grid_change_kind_known"), "grid_change", f"kind IN ({KINDS})"
    )

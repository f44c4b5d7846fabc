"""Override areas name their category by a case-category code (foreign key)

Revision ID: 0012_override_area_category_fk
Revises: 0009_override_category_codes
Create Date: 2026-12-04 21:50:00

Revision 0009 turned categories given by name into codes; a foreign key now keeps every area's
category a known case category (renaming a code carries over to the areas). An area whose
category is still unknown stops the upgrade with its id, to be corrected by hand.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0012_override_area_category_fk"
down_revision: str | Sequence[str] | None = "0009_override_category_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE override_area o SET category = cc.code FROM case_category cc "
        "WHERE o.category = cc.name"
    )
    unknown = (
        op.get_bind()
        .execute(
            text(
                "SELECT id, category FROM override_area WHERE category NOT IN "
                "(SELECT code FROM case_category) ORDER BY id"
            )
        )
        .all()
    )
    if unknown:
        listed = ", ".join(f"#{r.id} '{r.category}'" for r in unknown[:20])
        raise RuntimeError(
            f"override areas with a category that is no case category: {listed}; "
            "set each to a case-category code, then upgrade again"
        )
    op.create_foreign_key(
        op.f("fk_override_area_category_case_category"),
        "override_area",
        "case_category",
        ["category"],
        ["code"],
        onupdate="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_override_area_category_case_category"), "override_area", type_="foreignkey"
    )

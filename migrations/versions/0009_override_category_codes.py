"""Store override areas' categories as case-category codes

Revision ID: 0009_override_category_codes
Revises: 0008_auth_audit
Create Date: 2026-12-02 16:00:00

Cases carry the category code; areas drawn with a category's Chinese name (占道经营) never
applied to them. Names become codes; the service now accepts either and stores the code.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_override_category_codes"
down_revision: str | Sequence[str] | None = "0008_auth_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE override_area o SET category = cc.code FROM case_category cc "
        "WHERE o.category = cc.name"
    )


def downgrade() -> None:
    # The codes stay: they are what cases carry, and names are accepted when reading.
    pass

"""Public case codes, the reporter's secret and limits on public case endpoints

Revision ID: 0010_public_case_codes
Revises: 0009_override_category_codes
Create Date: 2026-12-04 18:40:00

Case codes were SJ + date + a global sequence, and public endpoints took numeric ids: anyone
could read and rate every case. Every case now has an unguessable ``public_code`` (15 random
Crockford base32 characters from gen_random_uuid() and a Luhn mod 32 check character; existing
cases get one here), a hash of the reporter's secret, and failed tries on the public endpoints
are counted per address in ``public_rate_limit``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_public_case_codes"
down_revision: str | Sequence[str] | None = "0009_override_category_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same code as app.services.public_cases (new_code / check_char), made in the database so
# every insert gets one, whatever writes it.
CODE_FUNCTION = """
CREATE FUNCTION case_public_code() RETURNS varchar LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    -- the random bytes of two version-4 UUIDs (bytes 6 and 8 carry version and variant)
    a bytea := uuid_send(gen_random_uuid());
    b bytea := uuid_send(gen_random_uuid());
    positions constant int[] := ARRAY[0, 1, 2, 3, 4, 5, 7, 9, 10, 11, 12, 13, 14, 15];
    body text := '';
    v int;
    factor int := 2;
    total int := 0;
    addend int;
    i int;
BEGIN
    FOR i IN 1..15 LOOP
        IF i <= 14 THEN
            v := get_byte(a, positions[i]) % 32;
        ELSE
            v := get_byte(b, positions[1]) % 32;
        END IF;
        body := body || substr(alphabet, v + 1, 1);
    END LOOP;
    FOR i IN REVERSE 15..1 LOOP
        addend := factor * (strpos(alphabet, substr(body, i, 1)) - 1);
        factor := 3 - factor;
        total := total + addend / 32 + addend % 32;
    END LOOP;
    RETURN body || substr(alphabet, ((32 - total % 32) % 32) + 1, 1);
END $$;
"""


def upgrade() -> None:
    op.execute(CODE_FUNCTION)
    # A volatile default: every existing case gets its own code as the column is added.
    op.add_column(
        "case",
        sa.Column(
            "public_code",
            sa.String(length=16),
            server_default=sa.text("case_public_code()"),
            nullable=False,
        ),
    )
    op.create_unique_constraint(op.f("uq_case_public_code"), "case", ["public_code"])
    op.add_column("case", sa.Column("reporter_secret_hash", sa.String(length=64), nullable=True))
    op.create_table(
        "public_rate_limit",
        sa.Column("bucket", sa.String(length=20), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "bucket", "client", "window_start", name=op.f("pk_public_rate_limit")
        ),
    )
    op.create_index("ix_public_rate_limit_window_start", "public_rate_limit", ["window_start"])


def downgrade() -> None:
    op.drop_table("public_rate_limit")
    op.drop_column("case", "reporter_secret_hash")
    op.drop_constraint(op.f("uq_case_public_code"), "case", type_="unique")
    op.drop_column("case", "public_code")
    op.execute("DROP FUNCTION case_public_code()")

"""Clean-up for tests that write committed cases (through a live server)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def delete_cases(session: Session, ids: list[int]) -> int:
    """Delete cases and everything hanging off them; return how many cases went."""
    if not ids:
        return 0
    session.execute(text("DELETE FROM camera_event WHERE case_id = ANY(:ids)"), {"ids": ids})
    session.execute(
        text('UPDATE "case" SET merged_into_id = NULL WHERE merged_into_id = ANY(:ids)'),
        {"ids": ids},
    )
    n = session.execute(text('DELETE FROM "case" WHERE id = ANY(:ids)'), {"ids": ids}).rowcount
    session.flush()
    return int(n or 0)

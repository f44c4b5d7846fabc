"""Run one grid edit in its own transaction, or as a dry run that is rolled back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.db import transaction
from app.errors import Conflict


def run_edit(
    session: Session, operation: Callable[[Session], dict[str, Any]], *, dry_run: bool
) -> dict[str, Any]:
    """Run ``operation`` and commit it, or with ``dry_run`` roll it back: the answer then shows
    exactly what saving would do, with no change recorded (``change`` is None)."""
    try:
        if dry_run:
            try:
                result = operation(session)
            finally:
                session.rollback()
            result["change"] = None
        else:
            with transaction(session):
                result = operation(session)
    except StaleDataError as exc:  # the locks make this rare; never a silent overwrite
        raise Conflict(
            "网格已被他人修改 / the grid changed while saving; reload and edit again"
        ) from exc
    result["dry_run"] = dry_run
    return result

"""Settings kept as key → JSON value rows (the case loop's, the visit plans', the points'):
read over their defaults, and written one checked key at a time.

Each module owns its defaults and checks what a value may be; this module only reads and
writes the rows, the same way for every such table."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session


def read(session: Session, model: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """The defaults (copied, never shared) overlaid with the stored values of known keys."""
    stored = dict(session.execute(select(model.key, model.value)).all())
    return merge(defaults, stored)


def merge(defaults: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(defaults), **{k: v for k, v in stored.items() if k in defaults}}


def write(session: Session, model: Any, values: dict[str, Any], **who: Any) -> None:
    """Store already checked ``values``; ``who`` sets further columns (e.g. ``updated_by``)."""
    now = datetime.now(UTC)
    for key, value in values.items():
        row = session.get(model, key)
        if row is None:
            session.add(model(key=key, value=value, **who))
        else:
            row.value = value
            row.updated_at = now
            for column, v in who.items():
                setattr(row, column, v)
    session.flush()

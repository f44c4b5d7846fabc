"""The audit log: every change and every read of personal data, appended, never rewritten.

``record`` writes one entry in the caller's transaction (the change and its entry commit or roll
back together). ``grid_boundary_changes`` gives the before/after boundaries of the grid edits made
in the current transaction, for the entry of a grid edit. Entries never hold personal values:
``detail`` names fields, not their contents.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from app.models import AuditEntry, GridChange
from app.services import csv_safe

LOGGER = logging.getLogger(__name__)

KINDS = ("change", "read_personal", "export", "login", "login_failed", "logout", "admin")


@dataclass(frozen=True)
class Who:
    """The person behind an entry, and where the request came from."""

    user_id: int | None = None
    username: str | None = None
    role: str | None = None
    ip: str | None = None


def record(
    session: Session,
    who: Who,
    kind: str,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | int | None = None,
    status: int | None = None,
    before: Any = None,
    after: Any = None,
    detail: Any = None,
) -> AuditEntry:
    """Append one entry in the session's transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown audit kind {kind!r}")
    entry = AuditEntry(
        user_id=who.user_id,
        username=who.username,
        role=who.role,
        ip=who.ip,
        kind=kind,
        action=action[:80],
        object_type=object_type,
        object_id=None if object_id is None else str(object_id)[:80],
        status=status,
        before=before,
        after=after,
        detail=detail,
    )
    session.add(entry)
    session.flush()
    return entry


@event.listens_for(Session, "after_flush")
def _note_grid_changes(session: Session, _context: Any) -> None:
    """Remember the grid edits flushed in this transaction (for their audit entry)."""
    ids = [o.id for o in session.new if isinstance(o, GridChange)]
    if ids:
        session.info.setdefault("audit_grid_changes", []).extend(ids)


@event.listens_for(Session, "after_soft_rollback")
def _forget_grid_changes(session: Session, _previous: Any) -> None:
    session.info.pop("audit_grid_changes", None)


def grid_boundary_changes(session: Session) -> list[dict[str, Any]]:
    """Return the grid edits of the current transaction with the boundaries before and after.

    A grid changed in place had its old state saved in ``grid_state`` by the same edit; a grid
    retired by a split or merge keeps its row (``valid_to`` set) and so its old boundary.
    """
    noted = session.info.pop("audit_grid_changes", [])
    if not noted:
        return []
    changes = session.execute(
        text(
            "SELECT id, kind, parent_id, before_ids, after_ids FROM grid_change "
            "WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id"
        ),
        {"ids": sorted(set(noted))},
    ).all()
    out: list[dict[str, Any]] = []
    for ch in changes:
        before = session.execute(
            text(
                """SELECT g.id, coalesce(s.code, g.code) AS code, coalesce(s.name, g.name) AS name,
                          ST_AsGeoJSON(coalesce(s.geom, g.geom), 7) AS geom
                   FROM grid g LEFT JOIN grid_state s ON s.grid_id = g.id AND s.change_id = :c
                   WHERE g.id = ANY(CAST(:ids AS integer[])) ORDER BY g.id"""
            ),
            {"c": ch.id, "ids": list(ch.before_ids or [])},
        ).all()
        after = session.execute(
            text(
                "SELECT id, code, name, ST_AsGeoJSON(geom, 7) AS geom FROM grid "
                "WHERE id = ANY(CAST(:ids AS integer[])) AND valid_to IS NULL ORDER BY id"
            ),
            {"ids": list(ch.after_ids or [])},
        ).all()
        out.append(
            {
                "change_id": ch.id,
                "kind": ch.kind,
                "parent_id": ch.parent_id,
                "before": [_grid(r) for r in before],
                "after": [_grid(r) for r in after],
            }
        )
    return out


def _grid(row: Any) -> dict[str, Any]:
    return {"id": row.id, "code": row.code, "name": row.name, "geometry": json.loads(row.geom)}


def entries(
    session: Session,
    *,
    kind: str | None = None,
    username: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
    offset: int = 0,
) -> dict[str, Any]:
    """List entries, newest first, with filters."""
    q = select(AuditEntry)
    if kind:
        q = q.where(AuditEntry.kind == kind)
    if username:
        q = q.where(AuditEntry.username == username)
    if object_type:
        q = q.where(AuditEntry.object_type == object_type)
    if object_id:
        q = q.where(AuditEntry.object_id == object_id)
    if since:
        q = q.where(AuditEntry.at >= since)
    if until:
        q = q.where(AuditEntry.at < until)
    rows = session.scalars(q.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
    return {"items": [entry_dict(e) for e in rows], "limit": limit, "offset": offset}


def entry_dict(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "user_id": e.user_id,
        "username": e.username,
        "role": e.role,
        "ip": str(e.ip) if e.ip else None,
        "kind": e.kind,
        "action": e.action,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "status": e.status,
        "before": e.before,
        "after": e.after,
        "detail": e.detail,
    }


def export_csv(session: Session, **filters: Any) -> str:
    """The entries as CSV (UTF-8 with BOM, so Excel reads the Chinese)."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv_safe.writer(buf)  # a username or note '=…' stays text
    cols = [
        "id",
        "at",
        "username",
        "role",
        "ip",
        "kind",
        "action",
        "object_type",
        "object_id",
        "status",
        "detail",
        "before",
        "after",
    ]
    w.writerow(cols)
    offset = 0
    while True:
        page = entries(session, limit=5000, offset=offset, **filters)["items"]
        for e in page:
            w.writerow(
                [
                    json.dumps(e[c], ensure_ascii=False) if isinstance(e[c], dict | list) else e[c]
                    for c in cols
                ]
            )
        if len(page) < 5000:
            break
        offset += 5000
    return buf.getvalue()

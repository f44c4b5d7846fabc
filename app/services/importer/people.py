"""Validate and load departments, workers and who is responsible for which grid."""

from __future__ import annotations

import re

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ImportRejected
from app.models import Department, Grid, GridAssignment, Worker
from app.models.people import ROLES
from app.services.importer.common import (
    OUTSIDE_SCOPE,
    Progress,
    _require,
    _str,
    no_progress,
    row_where,
)


def import_departments(
    session: Session, frame: pd.DataFrame, *, source: str, progress: Progress = no_progress
) -> int:
    """Load functional departments (code, name, phone, duties)."""
    _require(frame, source, ("code", "name"))
    problems = []
    seen: set[str] = set()
    existing = set(session.scalars(select(Department.code)))
    for i, row in frame.iterrows():
        code, name = _str(row["code"]), _str(row["name"])
        if not code or not name:
            problems.append({"where": row_where(frame, i), "reason": "code and name are required"})
        elif code in seen or code in existing:
            problems.append(
                {
                    "where": row_where(frame, i),
                    "field": "code",
                    "reason": f"duplicate code '{code}'",
                }
            )
        seen.add(code)
    if problems:
        raise ImportRejected(source, problems)
    session.add_all(
        Department(
            code=_str(r["code"]),
            name=_str(r["name"]),
            phone=_str(r.get("phone")) or None,
            duties=_str(r.get("duties")) or None,
        )
        for _, r in frame.iterrows()
    )
    session.flush()
    return len(frame)


#: A worker's phone: a mobile number (1[3-9] and nine digits) or a landline with its area code
#: (0551-65000110, 055165000110), with an optional extension.
PHONE = re.compile(r"1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(?:-\d{1,6})?")


def import_workers(
    session: Session, frame: pd.DataFrame, *, source: str, progress: Progress = no_progress
) -> int:
    """Load workers (code, name, phone, on_duty)."""
    _require(frame, source, ("name",))
    problems = []
    has_code = "code" in frame.columns
    existing = set(session.scalars(select(Worker.code).where(Worker.code.is_not(None))))
    seen: set[str] = set()
    for i, row in frame.iterrows():
        code = _str(row["code"]) if has_code else ""
        phone = _str(row.get("phone")) if "phone" in frame.columns else ""
        if not _str(row["name"]):
            problems.append(
                {"where": row_where(frame, i), "field": "name", "reason": "name is required"}
            )
        if code and (code in seen or code in existing):
            problems.append(
                {
                    "where": row_where(frame, i),
                    "field": "code",
                    "reason": f"duplicate code '{code}'",
                }
            )
        if phone and not PHONE.fullmatch(phone.replace(" ", "")):
            problems.append(
                {
                    "where": row_where(frame, i),
                    "field": "phone",
                    "reason": f"'{phone}' is not a phone number",
                }
            )
        seen.add(code)
    if problems:
        raise ImportRejected(source, problems)
    session.add_all(
        Worker(
            code=(_str(r["code"]) or None) if has_code else None,
            name=_str(r["name"]),
            phone=_str(r.get("phone")) or None,
            on_duty=_str(r.get("on_duty")).lower() not in ("false", "0", "no", "否"),
        )
        for _, r in frame.iterrows()
    )
    session.flush()
    return len(frame)


def import_assignments(
    session: Session,
    frame: pd.DataFrame,
    *,
    source: str,
    progress: Progress = no_progress,
    scope: frozenset[int] | None = None,
) -> int:
    """Load who is responsible for which grid (worker_code, grid_code, role)."""
    _require(frame, source, ("worker_code", "grid_code", "role"))
    workers = dict(
        session.execute(select(Worker.code, Worker.id).where(Worker.code.is_not(None))).all()
    )
    grids = dict(session.execute(select(Grid.code, Grid.id).where(Grid.valid_to.is_(None))).all())
    problems, rows = [], []
    for i, row in frame.iterrows():
        w, g, role = _str(row["worker_code"]), _str(row["grid_code"]), _str(row["role"])
        if w not in workers:
            problems.append(
                {
                    "where": row_where(frame, i),
                    "field": "worker_code",
                    "reason": f"worker '{w}' not found",
                }
            )
        elif g not in grids:
            problems.append(
                {
                    "where": row_where(frame, i),
                    "field": "grid_code",
                    "reason": f"grid '{g}' not found",
                }
            )
        elif scope is not None and grids[g] not in scope:
            problems.append(
                {
                    "where": row_where(frame, i),
                    "field": "grid_code",
                    "reason": f"grid '{g}': {OUTSIDE_SCOPE}",
                }
            )
        elif role not in ROLES:
            problems.append(
                {
                    "where": row_where(frame, i),
                    "field": "role",
                    "reason": f"role '{role}' is not one of {', '.join(ROLES)}",
                }
            )
        else:
            rows.append({"worker_id": workers[w], "grid_id": grids[g], "role": role})
    if problems:
        raise ImportRejected(source, problems)
    session.bulk_insert_mappings(GridAssignment, rows)  # type: ignore[arg-type]
    session.flush()
    return len(rows)

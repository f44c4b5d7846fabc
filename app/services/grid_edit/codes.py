"""Codes of new grids, following the pattern of their siblings."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ValidationFailed
from app.models import Grid

_TRAILING_NUMBER = re.compile(r"(.*\D)?(\d+)")
_SEPARATORS = "-_"


def code_pattern(code: str, prefix: str = "") -> tuple[str, int, int] | None:
    """Split a code into its stem, the width of its trailing number and that number.

    A code that starts with ``prefix`` (its parent's code) keeps the whole prefix in its stem,
    so ``340188001002`` under ``340188001`` is stem ``340188001`` and number ``002``, and
    ``HEL-02-003`` under ``HEL-02`` is stem ``HEL-02-`` and number ``003``. None when the
    code does not end in a number.
    """
    if prefix and code.startswith(prefix):
        m = _TRAILING_NUMBER.fullmatch(code[len(prefix) :])
        if m is not None:
            return prefix + (m[1] or ""), len(m[2]), int(m[2])
    m = _TRAILING_NUMBER.fullmatch(code)
    if m is None:
        return None
    return m[1] or "", len(m[2]), int(m[2])


def next_codes(
    session: Session, parent: Grid | None, count: int, *, like: Grid | None = None
) -> list[str]:
    """Return ``count`` unused codes for new grids under ``parent`` (None: the top level).

    The one rule for every new grid (drawn, split, merged, divided): new codes follow the
    pattern the siblings already use, stem and width, counted on after the highest number ever
    given with that stem under the parent, history included, so a code is never reused for a
    different territory. Splitting ``HEL-02-002`` (siblings ``HEL-02-001`` …) gives
    ``HEL-02-003`` …; the first children of ``340188001`` get ``340188001001`` …. ``like``
    (the grid being split or merged) names the pattern when siblings mix several. Without
    siblings, the parent's code is continued with its own separator (``HEL-02-002-01``) or
    none (``34018800101``), 3 digits under a street or town, 2 below.
    """
    if parent is not None:
        prefix = parent.code
        rows = session.scalars(select(Grid.code).where(Grid.parent_id == parent.id)).all()
    else:
        prefix = ""
        rows = session.scalars(select(Grid.code).where(Grid.parent_id.is_(None))).all()
    numbers: dict[str, list[tuple[int, int]]] = {}
    for code in rows:
        found = code_pattern(code, prefix)
        if found is not None:
            numbers.setdefault(found[0], []).append(found[1:])
    own = code_pattern(like.code, prefix) if like is not None else None
    if own is not None and own[0] in numbers:
        stem = own[0]
    elif numbers:
        stem = max(numbers, key=lambda s: (len(numbers[s]), max(n for _, n in numbers[s])))
    elif parent is not None:
        sep = next((c for c in reversed(parent.code) if c in _SEPARATORS), "")
        stem = parent.code + sep
    else:
        raise ValidationFailed(
            "顶级网格须填写编码 / a top-level grid needs its code (the administrative code of "
            "the street or town)",
            field="code",
        )
    used = numbers.get(stem, [])
    default_width = 3 if parent is not None and parent.level == 1 else 2
    width = max((w for w, _ in used), default=default_width)
    start = max((n for _, n in used), default=0) + 1
    if start + count - 1 >= 10**width:
        raise ValidationFailed(
            f"编码已用尽 / no free {width}-digit codes are left after {stem or 'the top level'}",
            parent_code=prefix,
        )
    taken = set(
        session.scalars(
            select(Grid.code).where(
                Grid.code.in_([f"{stem}{n:0{width}d}" for n in range(start, start + 2 * count)])
            )
        ).all()
    )
    out, n = [], start
    while len(out) < count:
        code = f"{stem}{n:0{width}d}"
        if n >= 10**width:
            raise ValidationFailed(
                f"编码已用尽 / no free {width}-digit codes are left after {stem}",
                parent_code=prefix,
            )
        if code not in taken and not (
            n >= start + 2 * count
            and session.scalar(select(Grid.id).where(Grid.code == code).limit(1))
        ):
            out.append(code)
        n += 1
    return out

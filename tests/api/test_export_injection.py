"""Exports that cannot attack the reader (issue #12, section 5): every CSV the app writes quotes
a text cell that a spreadsheet would run as a formula, every Excel text is a string cell, and
numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from app.services import audit, csv_safe
from app.services.locate import BatchResult
from tests.api.case_helpers import POINT

# What an attacker puts in a free-text field, and what the reader's spreadsheet must show.
CORPUS = [
    '=HYPERLINK("http://x","y")',
    "+1",
    "-1+2",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "=cmd|' /C calc'!A0",
    "=1\x01+2",  # a control character Excel's XML cannot hold
]


def _csv(body: bytes | str) -> list[list[str]]:
    if isinstance(body, bytes):
        body = body.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))


def _no_formula_cell(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(csv_safe.TRIGGERS) or _number(cell), repr(cell)


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_neutralize_quotes_formula_text_and_keeps_numbers() -> None:
    for value in CORPUS:
        assert csv_safe.neutralize(value) == "'" + value
    for value in ("普通描述", "a=1", "", " =1", "1-2"):
        assert csv_safe.neutralize(value) == value
    for value in (-1, -1.5, 0, 3, None, True):
        assert csv_safe.neutralize(value) == value


def test_case_ledger_csv_and_xlsx(client) -> None:  # type: ignore[no-untyped-def]
    codes = []
    for n, value in enumerate(CORPUS):
        res = client.post(
            "/api/cases",
            json={
                "x": POINT[0],
                "y": POINT[1],
                "category": "streetlight",
                "description": value,
                "address": value,
                "reporter_name": value,
                "idempotency_key": f"csv-corpus-{n}",
            },
        )
        assert res.status_code == 201, res.get_json()
        codes.append(res.get_json()["case"]["code"])
    rows = []
    for code in codes:
        res = client.get(f"/api/cases/export.csv?code={code}")
        assert res.status_code == 200
        got = _csv(res.data)
        rows += got[1:]
        header = got[0]
    _no_formula_cell(rows)
    col = header.index(next(h for h in header if "描述" in h))
    assert sorted(r[col] for r in rows) == sorted("'" + v for v in CORPUS)

    for code, value in zip(codes, CORPUS, strict=True):
        res = client.get(f"/api/cases/export.xlsx?code={code}")
        assert res.status_code == 200
        ws = load_workbook(io.BytesIO(res.data)).active
        cells = [c for row in ws.iter_rows(min_row=2) for c in row if c.value is not None]
        assert cells and not [c for c in cells if c.data_type == "f"]
        texts = [c.value for c in cells if c.data_type == "s"]
        # Shown literally, as text (XML keeps a carriage return as a line feed).
        shown = value.replace("\r", "\n").replace("\x01", "")
        assert shown in [t.replace("\r", "\n") for t in texts]
        numbers = [c.value for c in cells if c.data_type == "n"]
        assert numbers, "numeric columns (coordinates) stay numbers"
        assert all(isinstance(v, int | float) for v in numbers)


def test_audit_export_csv(client, db_session) -> None:  # type: ignore[no-untyped-def]
    for value in CORPUS:
        audit.record(
            db_session,
            audit.Who(username=value[:60]),
            "change",
            value[:80],
            object_type="case",
            object_id=value[:80],
        )
    db_session.flush()
    res = client.get("/api/audit/export.csv?kind=change")
    assert res.status_code == 200
    rows = _csv(res.data)
    _no_formula_cell(rows)
    flat = {cell for row in rows for cell in row}
    assert {"'" + v for v in CORPUS} <= flat


def test_locate_batch_csv(client) -> None:  # type: ignore[no-untyped-def]
    lines = ["id,lon,lat"]
    for value in CORPUS:
        quoted = '"' + value.replace('"', '""') + '"'
        lines.append(f"{quoted},{POINT[0]},{POINT[1]}")
    lines.append("-7,-73.98,40.75")  # a negative longitude and a negative id
    res = client.post(
        "/api/locate/batch?output=csv",
        data="\n".join(lines).encode(),
        content_type="text/csv",
    )
    assert res.status_code == 200, res.get_data(as_text=True)
    rows = _csv(res.get_data(as_text=True))
    header, rows = rows[0], rows[1:]
    _no_formula_cell(rows)
    ids = [r[header.index("id")] for r in rows]
    assert ids[: len(CORPUS)] == ["'" + v for v in CORPUS]
    assert ids[-1] == "'-7"  # ids are text: quoted like any text
    last = rows[-1]
    # Coordinates are numbers: a negative longitude is written as the number it is.
    assert float(last[header.index("lon")]) == pytest.approx(-73.98)
    assert last[header.index("lon")].startswith("-73.98")


def test_locate_batch_csv_writer_keeps_numeric_columns(db_session) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from app.services import locate

    result: BatchResult = locate.locate_batch(
        db_session, np.array([-73.98, POINT[0]]), np.array([40.75, POINT[1]]), None
    )
    buf = io.StringIO()
    locate.write_csv(result, buf, ["=1", 5])
    rows = _csv(buf.getvalue())
    assert rows[1][0] == "'=1" and rows[2][0] == "5"  # a number stays a number
    assert rows[1][rows[0].index("lon")].startswith("-73.98")


def test_household_and_worker_exports_csv(client, db_session) -> None:  # type: ignore[no-untyped-def]
    hids = db_session.scalars(
        text("SELECT id FROM household ORDER BY id LIMIT :n"), {"n": len(CORPUS)}
    ).all()
    wids = db_session.scalars(
        text("SELECT id FROM worker ORDER BY id LIMIT :n"), {"n": len(CORPUS)}
    ).all()
    for hid, wid, value in zip(hids, wids, CORPUS, strict=True):
        db_session.execute(
            text("UPDATE household SET address = :v, head_name = :n WHERE id = :id"),
            {"v": value[:40], "n": value[:20], "id": hid},
        )
        db_session.execute(
            text("UPDATE worker SET name = :v WHERE id = :id"), {"v": value[:40], "id": wid}
        )
    db_session.flush()
    for kind in ("households", "workers"):
        for personal in ("false", "true"):
            res = client.get(f"/api/export/{kind}?format=csv&include_personal={personal}")
            assert res.status_code == 200, res.get_data(as_text=True)[:200]
            rows = _csv(res.data)
            _no_formula_cell(rows[1:])
            flat = {cell for row in rows for cell in row}
            if personal == "true" or kind == "households":
                assert {"'" + v[:40] for v in CORPUS} <= flat, kind
            if kind == "households":
                header = rows[0]
                lon = header.index("lon")
                assert all(_number(r[lon]) for r in rows[1:])


def test_every_table_export_writes_formulas_as_text_and_drops_what_excel_cannot_hold() -> None:
    header = ["姓名", "=备注"]
    rows = [["王\x07五", '=HYPERLINK("http://x")'], ["-3+2", 5]]
    book = load_workbook(io.BytesIO(csv_safe.xlsx_bytes(header, rows, title="x" * 40)))
    ws = book.active
    assert ws.title == "x" * 31
    cells = [[c.value for c in r] for r in ws.iter_rows()]
    assert cells == [["姓名", "=备注"], ["王五", '=HYPERLINK("http://x")'], ["-3+2", 5]]
    assert all(c.data_type == "s" for r in ws.iter_rows() for c in r if isinstance(c.value, str))
    text = csv_safe.csv_bytes(header, rows).decode("utf-8")
    assert text.startswith("\ufeff") and "'=HYPERLINK" in text and "'-3+2" in text

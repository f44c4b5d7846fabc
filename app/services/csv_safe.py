"""Spreadsheet cells that cannot attack the reader (OWASP CSV injection).

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by
Excel, LibreOffice and WPS as a formula (``=HYPERLINK(…)``, ``@SUM(…)``, ``-1+2``, DDE). Every
CSV the app writes passes its text cells through ``neutralize``, which puts a single quote in
front of such a value (shown as text, the quote hidden by the spreadsheet); numbers stay numbers,
so a negative number in a numeric column keeps its value. Excel files write every text as a
string cell (``xlsx_text_cells``), never as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import pandas as pd
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """Return ``value`` safe for a CSV cell: text starting with a formula character is quoted."""
    if isinstance(value, str) and value.startswith(TRIGGERS):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [neutralize(v) for v in row]


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` whose text cells (and column names) are neutralized."""
    out = pd.DataFrame(frame).copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralize)
    out.columns = [neutralize(c) if isinstance(c, str) else c for c in out.columns]
    return out


def frame_to_csv(frame: pd.DataFrame, out: Any, **kwargs: Any) -> None:
    """Write ``frame`` as CSV with neutralized text cells. Lines end with CRLF (RFC 4180), so a
    carriage return or line feed inside a text cell is quoted and never splits a row."""
    safe_frame(frame).to_csv(out, lineterminator="\r\n", **kwargs)


def writer(buf: io.StringIO | Any) -> Any:
    """A ``csv.writer`` whose rows are neutralized."""
    inner = csv.writer(buf)

    class _Safe:
        def writerow(self, row: Iterable[Any]) -> Any:
            return inner.writerow(safe_row(row))

        def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
            for row in rows:
                inner.writerow(safe_row(row))

    return _Safe()


def xlsx_value(value: Any) -> Any:
    """Return ``value`` as an Excel cell can hold it: control characters XML cannot carry
    (which openpyxl refuses with an error) are dropped from text."""
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def xlsx_text_cells(ws: Any) -> None:
    """Make every text cell of an openpyxl worksheet a string cell, never a formula."""
    for row in ws.iter_rows():
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"


def csv_bytes(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> bytes:
    """A table as CSV: UTF-8 with a byte-order mark (Excel then reads the Chinese text right),
    every text cell neutralized."""
    buf = io.StringIO()
    w = writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def xlsx_bytes(
    header: Iterable[Any],
    rows: Iterable[Iterable[Any]],
    *,
    title: str,
    freeze: str | None = None,
    fit_widths: bool = False,
) -> bytes:
    """A table as one Excel sheet: a bold header, cells XML can carry, every text a string
    cell (never a formula); ``freeze`` a cell such as "B2", ``fit_widths`` sizes the columns
    by their titles."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    titles = [xlsx_value(h) for h in header]
    ws.append(titles)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append([xlsx_value(v) for v in row])
    xlsx_text_cells(ws)
    if freeze:
        ws.freeze_panes = freeze
    if fit_widths:
        for i, name in enumerate(titles, start=1):
            width = max(10, min(40, len(str(name)) * 2 + 4))
            ws.column_dimensions[get_column_letter(i)].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()

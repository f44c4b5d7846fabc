"""Exports mask personal data in every format: households (head's name and phone, sensitive
tags), workers (name and phone) and cases (the reporter's contact). Each file is parsed back and
searched for the raw values read from the database; ``include_personal`` gives them back only to
the roles allowed (admin and centre, as the README says)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import geopandas as gpd
import openpyxl
import pytest
from sqlalchemy import text

from app.services import exporter
from tests.auth.conftest import bearer

FORMATS = {"csv": ".csv", "geojson": ".geojson", "gpkg": ".gpkg", "shapefile": ".shp"}


def _cells(path: Path, fmt: str) -> set[str]:
    """Every value of the exported file, as text."""
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    else:
        frame = gpd.read_file(path)
        rows = [[str(v) for v in r] for r in frame.drop(columns="geometry").itertuples(index=False)]
        rows.append([str(c) for c in frame.columns])
    return {str(v) for r in rows for v in r}


def _raw(db_session, kind: str) -> tuple[set[str], set[str]]:  # type: ignore[no-untyped-def]
    """The full names and phones (and tags) of a kind, from the database."""
    if kind == "households":
        rows = db_session.execute(text("SELECT head_name, head_phone, tags FROM household")).all()
        names = {r.head_name for r in rows if r.head_name} | {
            r.head_phone for r in rows if r.head_phone
        }
        tags = {t for r in rows for t in (r.tags or [])}
        return names, tags
    rows = db_session.execute(text("SELECT name, phone FROM worker")).all()
    return {r.name for r in rows if r.name} | {r.phone for r in rows if r.phone}, set()


def _leaks(cells: set[str], raw: set[str]) -> set[str]:
    """The raw values found as a value of the file (or as one of a cell's ';'-joined values)."""
    tokens = cells | {part.strip() for c in cells if ";" in c for part in c.split(";")}
    return raw & tokens


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("kind", ["households", "workers"])
def test_every_format_masks_names_phones_and_tags(
    db_session, tmp_path: Path, kind: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    personal, tags = _raw(db_session, kind)
    assert personal, "the sample has names and phones to mask"
    path = tmp_path / f"{kind}{FORMATS[fmt]}"
    n = exporter.export(db_session, kind, path, fmt=fmt)
    assert n > 0
    cells = _cells(path, fmt)
    assert _leaks(cells, personal) == set()
    assert _leaks(cells, tags) == set()
    # Masked, not dropped: a phone keeps its first three and last four digits.
    phones = {p for p in personal if p.isdigit() and len(p) == 11}
    assert any(f"{p[:3]}****{p[-4:]}" in cells for p in phones)

    full = tmp_path / f"full-{kind}{FORMATS[fmt]}"
    exporter.export(db_session, kind, full, fmt=fmt, include_personal=True)
    shown = _cells(full, fmt)
    assert _leaks(shown, personal) == personal
    if tags:
        assert _leaks(shown, tags)


@pytest.mark.parametrize(
    "role", ["admin", "centre", "grid_chief", "micro_chief", "worker", "party_member", "department"]
)
def test_only_admin_and_centre_export_personal_values(app, db_session, accounts, role: str) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    allowed = role in ("admin", "centre")
    for kind in ("households", "workers"):
        personal, _ = _raw(db_session, kind)
        res = c.get(
            f"/api/export/{kind}?format=csv&include_personal=true", headers=bearer(accounts[role])
        )
        assert res.status_code == (200 if allowed else 403), (kind, res.status_code)
        if allowed:
            cells = {v for r in csv.reader(io.StringIO(res.get_data(as_text=True))) for v in r}
            assert _leaks(cells, personal)  # the full values, for those allowed (in their scope)
        masked = c.get(f"/api/export/{kind}?format=csv", headers=bearer(accounts[role]))
        assert masked.status_code == (200 if allowed else 403)
        if allowed:
            cells = {v for r in csv.reader(io.StringIO(masked.get_data(as_text=True))) for v in r}
            assert _leaks(cells, personal) == set()


def test_case_exports_mask_the_reporter_s_contact(app, client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    x, y = db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
            "WHERE code = '3401880010010101' AND valid_to IS NULL) s"
        )
    ).one()
    phone = "13987654321"
    res = client.post(
        "/api/cases",
        json={
            "x": x,
            "y": y,
            "category": "garbage",
            "description": "垃圾",
            "source": "resident",
            "reporter_contact": phone,
            "reporter_name": "欧阳娜娜",
        },
    )
    assert res.status_code == 201, res.get_json()
    c = app.test_client()
    for role in ("admin", "centre"):
        csv_text = c.get("/api/cases/export.csv", headers=bearer(accounts[role])).get_data(
            as_text=True
        )
        assert phone not in csv_text and "欧阳娜娜" not in csv_text
        assert f"{phone[:3]}****{phone[-4:]}" in csv_text
        xlsx = c.get("/api/cases/export.xlsx", headers=bearer(accounts[role]))
        assert xlsx.status_code == 200
        book = openpyxl.load_workbook(io.BytesIO(xlsx.get_data()), read_only=True)
        cells = {
            str(v)
            for ws in book.worksheets
            for row in ws.iter_rows(values_only=True)
            for v in row
            if v is not None
        }
        assert not any(phone in v or "欧阳娜娜" in v for v in cells)

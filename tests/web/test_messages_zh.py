"""Every error message a person reads is Chinese: each message written in the code is Chinese
already or translated by the catalogue of ``app.web.messages_zh``; real requests answer so."""

from __future__ import annotations

import ast
import io
import itertools
import json
import pathlib
import re

import pytest

from app.web.messages_zh import has_chinese, localise, translate

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.joinpath("app").rglob("*.py"), *ROOT.joinpath("gis").rglob("*.py")])
#: Functions whose text argument is a message shown to people (besides the error classes).
HELPERS = {"abort": 1, "problem": 0}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


#: Module-level text constants (``OUTSIDE_SCOPE = "…"``): a ``{NAME}`` stands for its text.
CONSTANTS: dict[str, str] = {}


def _sample(value: ast.FormattedValue) -> str:
    """A stand-in for a ``{…}`` of an f-string: a constant's text, a number where the format
    asks for one, else a word."""
    if isinstance(value.value, ast.Name) and value.value.id in CONSTANTS:
        return CONSTANTS[value.value.id]
    spec = ast.unparse(value.format_spec) if value.format_spec else ""
    return "12.5" if re.search(r"[fdeg%]", spec) else "x7"


def _variants(node: ast.expr) -> list[str] | None:
    """The texts a message expression can give (a conditional part gives each of its branches),
    or None when it is not built from text in this place (a variable, a call)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return [CONSTANTS[node.id]]
    if isinstance(node, ast.JoinedStr):
        parts: list[list[str]] = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append([str(v.value)])
            elif isinstance(v, ast.FormattedValue):
                inner = _variants(v.value) if isinstance(v.value, ast.IfExp) else None
                parts.append(inner or [_sample(v)])
        return ["".join(p) for p in itertools.product(*parts)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _variants(node.left), _variants(node.right)
        if left is None or right is None:
            return None
        return [a + b for a in left for b in right]
    if isinstance(node, ast.IfExp):
        body, orelse = _variants(node.body), _variants(node.orelse)
        if body is None or orelse is None:
            return None
        return body + orelse
    return None


def _error_classes(trees: dict[pathlib.Path, ast.Module]) -> set[str]:
    bases: dict[str, list[str]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = [_name(b) or "" for b in node.bases]
    found = {"GisError"}
    grown = True
    while grown:
        grown = False
        for cls, its in bases.items():
            if cls not in found and any(b in found for b in its):
                found.add(cls)
                grown = True
    return found


def _messages() -> list[tuple[str, str]]:
    """(place, message) for every message given to an error, an import problem's ``where`` and
    ``reason``, a calendar's problem sentence."""
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in SOURCES}
    errors = _error_classes(trees)
    for tree in trees.values():
        for stmt in tree.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id.isupper()
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                CONSTANTS[stmt.targets[0].id] = stmt.value.value
    found: list[tuple[str, str]] = []
    for path, tree in trees.items():
        rel = path.relative_to(ROOT)
        for node in ast.walk(tree):
            texts: list[ast.expr] = []
            prefix: list[str] = [""]
            if isinstance(node, ast.Call) and _name(node.func) in errors:
                cls = _name(node.func)
                if cls == "ImportRejected":
                    continue  # its message is built from the problems, checked below
                index = 1 if cls == "BadParameter" else 0
                given = node.args[index] if len(node.args) > index else None
                given = given or next((k.value for k in node.keywords if k.arg == "message"), None)
                if given is not None:
                    texts.append(given)
                if cls == "BadParameter" and node.args:
                    prefix = [f"{p}: " for p in (_variants(node.args[0]) or ["x7"])]
            elif isinstance(node, ast.Call) and _name(node.func) in HELPERS:
                index = HELPERS[_name(node.func) or ""]
                if len(node.args) > index:
                    texts.append(node.args[index])
                texts += [k.value for k in node.keywords if k.arg in ("description", "message")]
            elif isinstance(node, ast.Dict):
                keys = {
                    k.value: v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant)
                }
                if "where" in keys and "reason" in keys:
                    texts += [keys["where"], keys["reason"]]
            elif (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "reason" for t in node.targets)
                and isinstance(node.value, ast.Tuple)
                and len(node.value.elts) == 2
            ):
                texts.append(node.value.elts[1])
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "problems"
                and node.args
                and isinstance(node.args[0], ast.JoinedStr | ast.Constant)
            ):
                texts.append(node.args[0])
            for text in texts:
                for variant in _variants(text) or []:
                    if variant.strip("x7: ") == "":
                        continue  # a message passed on whole (another error's, a helper's)
                    for pre in prefix:
                        found.append((f"{rel}:{getattr(node, 'lineno', 0)}", pre + variant))
    return found


MESSAGES = _messages()


def test_the_walk_finds_the_messages_of_the_code() -> None:
    assert len(MESSAGES) > 400
    places = {place.split(":")[0] for place, _ in MESSAGES}
    assert {"app/params.py", "app/services/importer/points.py", "gis/crs.py"} <= places


def test_every_message_of_the_code_reads_in_chinese() -> None:
    untranslated = [
        f"{place}: {message}"
        for place, message in MESSAGES
        if not has_chinese(message) and not has_chinese(translate(message) or "")
    ]
    assert not untranslated, (
        "English messages without a Chinese translation in "
        "app/web/messages_zh.py CATALOGUE:\n" + "\n".join(untranslated)
    )


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("lat: 'abc' is not a number", "lat（纬度）：“abc”不是数字"),
        ("level: 7 is outside 1..5", "level（层级）：7 超出范围 1–5"),
        ("case SJ0000 does not exist", "事件 SJ0000 不存在"),
        ("grid '3401' not found", "未找到网格“3401”"),
        (
            "status: 'lost' is not one of open, closed",
            "status（状态）：“lost”不是可选值之一（可选：open, closed）",
        ),
        (
            "body: feature 3: the geometry is not an object",
            "body（请求内容）：第 3 个要素：几何图形不是对象",
        ),
        ("overlaps sibling 340188001 by 12.50 m²", "与同级网格 340188001 重叠 12.50 平方米"),
        (
            "cal.csv: row 3: date '2026-13-01' is not YYYY-MM-DD; row 4: date 'x' is not YYYY-MM-DD",
            "cal.csv：第 3 行：日期“2026-13-01”不是 YYYY-MM-DD 格式；第 4 行：日期“x”不是 YYYY-MM-DD 格式",
        ),
        (
            "fields: unknown field(s) a, b; use c, d",
            "fields（字段）：未知的字段：a, b（可用：c, d）",
        ),
    ],
)
def test_the_catalogue_names_what_is_wrong_and_where(english: str, chinese: str) -> None:
    assert translate(english) == chinese


def test_an_unknown_message_keeps_a_chinese_lead_and_its_english() -> None:
    body = localise(
        {"code": "not_found", "message": "something new", "param": None}, lambda c: "未找到"
    )
    assert body["message"] == "未找到 / something new" and body["message_en"] == "something new"
    bilingual = localise({"code": "conflict", "message": "网格已被修改 / stale"}, lambda c: "?")
    assert bilingual["message"] == "网格已被修改 / stale" and bilingual["message_en"] == "stale"
    named = localise(
        {"code": "grid_retired", "message": "网格已成为历史 / grid 3401 (城东) is history"}, str
    )
    assert named["message"] == "网格已成为历史 / grid 3401 (城东) is history"
    assert named["message_en"] == "grid 3401 (城东) is history"


# ---------------------------------------------------------------------------------- requests


def _error(res) -> dict:  # type: ignore[no-untyped-def]
    body = res.get_json()
    assert body and "error" in body, res.data[:300]
    return body["error"]


def test_a_swapped_point_cannot_be_located_and_says_so_in_chinese(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/api/locate?lon=31.820587&lat=117.228197")
    err = _error(res)
    assert res.status_code == 400 and err["code"] == "bad_coordinates"
    assert err["message"].startswith("无法定位：纬度 117.228197 超出范围")
    assert "latitude 117.228197" in err["message_en"]


def test_a_missing_case_is_named_in_chinese(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/api/cases/SJ9999999999X9")
    err = _error(res)
    assert res.status_code == 404 and err["code"] == "not_found"
    chinese = err["message"].split(" / ")[0]
    assert has_chinese(chinese) and "SJ9999999999X9" in chinese, err


def test_a_bad_parameter_names_the_field_in_chinese(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/api/grids?level=7")
    err = _error(res)
    assert res.status_code == 400 and err["param"] == "level"
    assert err["message"].startswith("level（层级）：") and "超出范围" in err["message"]
    assert "message_en" in err and not has_chinese(err["message_en"])


def test_an_import_with_a_bad_row_is_refused_row_by_row_in_chinese(client) -> None:  # type: ignore[no-untyped-def]
    csv = "code,name,lon,lat\nA1,站点一,117.2,31.8\nA2,站点二,abc,31.8\n"
    res = client.post(
        "/api/import/service_points",
        data={"file": (io.BytesIO(csv.encode()), "points.csv")},
        content_type="multipart/form-data",
    )
    err = _error(res)
    assert res.status_code == 422 and err["code"] == "import_rejected", err
    assert "未导入任何数据" in err["message"].split(" / ")[0]
    row = err["problems"][0]
    assert row["where"] == "row 3" and row["where_zh"] == "第 3 行"
    assert row["reason"].startswith("不是数字：“abc”") and "not a number" in row["reason_en"]
    assert "第 3 行：不是数字：“abc”" in err["message"].split(" / ")[0]
    json.dumps(err, ensure_ascii=False)


def test_the_browser_shows_the_chinese_half_of_an_error() -> None:
    # What every page does with an API error (GridGovText.message): the part before " / ".
    core = ROOT.joinpath("app/static/js/core.js").read_text(encoding="utf-8")
    assert 'text.split(" / ")[0]' in core and "GridGovText = { message: chinese" in core


@pytest.mark.browser
def test_the_locate_box_says_once_why_a_point_cannot_be_located(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    page.fill("#gg-locate-input", "31.820587, 117.228197")
    page.select_option("#gg-locate-crs", "wgs84")
    page.click("#gg-locate-go")
    page.wait_for_selector("#gg-locate-msg:not(:empty)")
    shown = page.inner_text("#gg-locate-msg")
    assert shown.startswith("无法定位：纬度 117.228197 超出范围"), shown
    assert shown.count("无法定位") == 1 and "latitude" not in shown


def test_a_page_shows_the_chinese_of_an_english_error(app) -> None:  # type: ignore[no-untyped-def]
    from app.web.errors import error_page

    with app.test_request_context("/cases/desk"):
        res = error_page(409, "case SJ1234 was changed by someone else meanwhile: reload it")
        page = res.get_data(as_text=True)
    assert res.status_code == 409 and res.mimetype == "text/html"
    assert "事件 SJ1234 已被他人修改：请刷新后重试" in page and "meanwhile" not in page


def test_an_import_refusal_with_chinese_reasons_still_leads_in_chinese(client) -> None:  # type: ignore[no-untyped-def]
    csv = "code,lon,lat\nC1,117.2301,31.8201\nC2,31.82,117.23\n"
    res = client.post(
        "/api/import/cameras",
        data={"file": (io.BytesIO(csv.encode()), "cams.csv")},
        content_type="multipart/form-data",
    )
    err = _error(res)
    assert res.status_code == 422 and err["code"] == "import_rejected"
    chinese, english = err["message"].split(" / ", 1)
    assert chinese.startswith(
        "cams.csv：1 条记录有误，未导入任何数据 — 第 3 行：纬度 117.23 超出范围"
    )
    assert english == err["message_en"] and "row 3: latitude 117.23" in english
    assert not has_chinese(english)

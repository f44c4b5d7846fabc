"""The web layer's error answers: domain errors, database failures and HTTP errors as JSON for
machines (the API, tiles, files) and as a Chinese page with the shell for people."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from app.web import messages_zh
from gis.errors import GisError

LOGGER = logging.getLogger(__name__)
#: What a 503 for an unreachable database asks the client to wait (seconds).
RETRY_AFTER_SECONDS = 5


#: Paths that answer machines: errors there stay JSON whatever the client.
MACHINE_PREFIXES = ("/api/", "/open311/", "/tiles/", "/basemap/", "/vendor/", "/static/")

PAGE_ERRORS = {
    401: ("请先登录", "请先登录后再打开此页面。"),
    403: ("无权访问", "您的账号无权打开此页面。如需使用，请联系系统管理员。"),
    404: ("页面不存在", "您要打开的页面不存在，或不在您负责的范围内。"),
    405: ("请求方式不被允许", "此页面不接受这种请求方式，请从菜单打开。"),
}


# A Chinese lead for a message written in English only (the machine ``code`` stays as it is).
CODE_ZH = {
    "bad_request": "请求有误",
    "bad_parameter": "参数有误",
    "validation_failed": "数据不符合规则",
    "import_rejected": "导入被拒绝，未导入任何数据",
    "not_found": "未找到所请求的记录",
    "conflict": "与当前状态冲突，请刷新后重试",
    "forbidden": "无权执行此操作",
    "unauthenticated": "请先登录",
    "bad_coordinates": "坐标有误",
    "unknown_crs": "不支持的坐标系",
    "gis_error": "空间数据有误",
    "illegal_transition": "事件当前状态不允许此操作",
    "stale_version": "记录已被他人修改，请刷新后重试",
    "idempotency_mismatch": "重复提交的内容不一致",
    "grid_retired": "网格已撤销",
    "undo_refused": "无法撤销",
    "version_required": "缺少版本号，请刷新后重试",
    "too_many_requests": "请求过于频繁，请稍后再试",
    "too_many_attempts": "尝试次数过多，请稍后再试",
    "reporter_proof_required": "需要上报人验证",
    "login_failed": "用户名或密码错误",
    "busy": "系统繁忙，请稍后再试",
}
HTTP_ZH = {
    400: "请求有误",
    404: "接口不存在",
    405: "不支持该请求方式",
    413: "请求内容过大",
    415: "不支持的内容类型",
    429: "请求过于频繁，请稍后再试",
}


has_chinese = messages_zh.has_chinese


def chinese_first(code: str, message: str, param: Any = None) -> str:
    """An error message as people read it: "中文 / English", the Chinese from the catalogue of
    ``app.web.messages_zh`` (else a lead chosen by the code, a parameter's name first)."""
    body = messages_zh.localise({"code": code, "message": message, "param": param}, code_lead)
    return str(body["message"])


def code_lead(code: str) -> str:
    """The generic Chinese lead of an error code (for a message the catalogue does not know)."""
    return CODE_ZH.get(code, "请求未能完成")


def localised_body(err: GisError) -> dict[str, Any]:
    """The JSON body of a domain error: Chinese ``message`` first, the English as ``message_en``,
    import problems translated row by row (see ``app.web.messages_zh``)."""
    return messages_zh.localise(err.to_dict(), code_lead, request.endpoint)


def is_page_request() -> bool:
    """Say whether the request is for a page (a person's browser), not the API or a tile."""
    return not request.path.startswith(MACHINE_PREFIXES) and request.path not in (
        "/favicon.ico",
        "/robots.txt",
    )


def _chinese_part(message: str) -> str:
    """The Chinese of a message: its Chinese half, or its translation ("" when there is none)."""
    return messages_zh.chinese_part(message) or messages_zh.translate(message) or ""


def error_page(status: int, message: str | None = None, headers: Any = None):  # type: ignore[no-untyped-def]
    """A Chinese HTML page for a failed page request, in the page shell, with a way back."""
    from app.web.menu import home_path

    heading, default = PAGE_ERRORS.get(status, ("出错了", "请求未能完成，请返回后重试。"))
    text_ = default if status in (404, 405) else (_chinese_part(message or "") or default)
    back, label = home_path()
    html = render_template(
        "error.html",
        title=heading,
        status=status,
        heading=heading,
        message=text_,
        back=back,
        back_label=label,
    )
    response = app_response(html, status)
    for name, value in headers or []:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def app_response(html: str, status: int):  # type: ignore[no-untyped-def]
    from flask import Response

    return Response(html, status=status, mimetype="text/html")


def register_error_handlers(app: Flask) -> None:
    """Answer domain errors and HTTP errors with a JSON body ``{"error": {...}}``; a page
    request gets a Chinese HTML page instead."""

    @app.errorhandler(GisError)
    def _gis(err: GisError):  # type: ignore[no-untyped-def]
        if is_page_request() and err.http_status != 401:
            return error_page(err.http_status, err.message)
        body = localised_body(err)
        response = jsonify(error=body)
        response.status_code = err.http_status
        if isinstance(err.details.get("retry_after"), int):
            response.headers["Retry-After"] = str(err.details["retry_after"])
        return response

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):  # type: ignore[no-untyped-def]
        if is_page_request() and (err.code or 500) >= 400:
            return error_page(err.code or 500, None, err.get_headers())
        code = err.name.lower().replace(" ", "_")
        lead = messages_zh.translate(err.description or "") or HTTP_ZH.get(
            err.code or 500, "请求未能完成"
        )
        response = jsonify(
            error={
                "code": code,
                "message": f"{lead} / {err.description}",
                "message_en": err.description,
            }
        )
        response.status_code = err.code or 500
        # Keep what the error says in its headers (a 405's Allow, a 401's WWW-Authenticate).
        for name, value in err.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(psycopg.InterfaceError)
    def _database_down(err: Exception):  # type: ignore[no-untyped-def]
        # The database cannot be reached (down, restarting, out of connections): a passing
        # condition the client may retry, not a fault of the request.
        orig = err.orig if isinstance(err, DBAPIError) else err
        LOGGER.error("database unavailable: %s", (str(orig).splitlines() or ["?"])[0])
        response = jsonify(
            error={
                "code": "service_unavailable",
                "message": "数据库暂不可用，请稍后重试 / the database is unavailable; retry shortly",
            }
        )
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(DataError)
    def _data_error(err: DataError):  # type: ignore[no-untyped-def]
        # A value the database refuses (out of range, malformed): the request's fault.
        LOGGER.warning(
            "value refused by the database: %s", (str(err.orig).splitlines() or ["?"])[0]
        )
        return jsonify(
            error={
                "code": "bad_request",
                "message": "请求中的值无效 / a value in the request is invalid",
            }
        ), 400

    @app.errorhandler(IntegrityError)
    def _integrity_error(err: IntegrityError):  # type: ignore[no-untyped-def]
        # A reference to a record that does not exist, or a duplicate the checks missed.
        LOGGER.warning("integrity error: %s", (str(err.orig).splitlines() or ["?"])[0])
        return jsonify(
            error={
                "code": "conflict",
                "message": "请求引用了不存在或冲突的记录 / the request names a record that does "
                "not exist or conflicts with another",
            }
        ), 409

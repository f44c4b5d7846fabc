"""Domain errors that carry their HTTP status, and the handler that turns them into JSON."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from gis.errors import GisError

LOGGER = logging.getLogger(__name__)
#: What a 503 for an unreachable database asks the client to wait (seconds).
RETRY_AFTER_SECONDS = 5


class AppError(GisError):
    """A failure the caller can act on; ``http_status`` says which kind.

    It shares the spatial layer's error shape (message, details, ``to_dict``), so one handler
    answers both.
    """

    http_status = 400
    code = "bad_request"


class BadParameter(AppError):
    """A query or body parameter is missing or malformed."""

    http_status = 400
    code = "bad_parameter"

    def __init__(self, param: str, message: str, **details: Any) -> None:
        super().__init__(f"{param}: {message}", param=param, **details)


class ValidationFailed(AppError):
    """Input was well formed but breaks a rule (geometry, range, topology)."""

    http_status = 422
    code = "validation_failed"


class NotFound(AppError):
    """The named record does not exist (or is not visible to the caller)."""

    http_status = 404
    code = "not_found"


class Conflict(AppError):
    """The request conflicts with the current state (stale version, illegal transition)."""

    http_status = 409
    code = "conflict"


class ImportRejected(ValidationFailed):
    """An import file has bad records; nothing was loaded. ``problems`` lists each one."""

    code = "import_rejected"

    def __init__(self, source: str, problems: list[dict[str, Any]]) -> None:
        shown = "; ".join(f"{p.get('where', '?')}: {p.get('reason', '')}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"{source}: {len(problems)} bad record(s), nothing was loaded — {shown}{more}",
            problems=problems,
        )
        self.problems = problems


#: Paths that answer machines: errors there stay JSON whatever the client.
MACHINE_PREFIXES = ("/api/", "/open311/", "/tiles/", "/basemap/", "/vendor/", "/static/")

PAGE_ERRORS = {
    401: ("请先登录", "请先登录后再打开此页面。"),
    403: ("无权访问", "您的账号无权打开此页面。如需使用，请联系系统管理员。"),
    404: ("页面不存在", "您要打开的页面不存在，或不在您负责的范围内。"),
    405: ("请求方式不被允许", "此页面不接受这种请求方式，请从菜单打开。"),
}


def is_page_request() -> bool:
    """Say whether the request is for a page (a person's browser), not the API or a tile."""
    return not request.path.startswith(MACHINE_PREFIXES) and request.path not in (
        "/favicon.ico",
        "/robots.txt",
    )


def _chinese_part(message: str) -> str:
    """The Chinese half of a bilingual message ("中文 / English"), else the message."""
    head = message.split(" / ", 1)[0].strip()
    return head if any("\u4e00" <= ch <= "\u9fff" for ch in head) else ""


def error_page(status: int, message: str | None = None, headers: Any = None):  # type: ignore[no-untyped-def]
    """A Chinese HTML page for a failed page request, in the page shell, with a way back."""
    from app.web.menu import home_path

    heading, default = PAGE_ERRORS.get(status, ("出错了", "请求未能完成，请返回后重试。"))
    text_ = default if status in (404, 405) else (_chinese_part(message or "") or default)
    back, label = home_path()
    html = render_template(
        "error.html", title=heading, status=status, heading=heading, message=text_,
        back=back, back_label=label,
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
        response = jsonify(error=err.to_dict())
        response.status_code = err.http_status
        if isinstance(err.details.get("retry_after"), int):
            response.headers["Retry-After"] = str(err.details["retry_after"])
        return response

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):  # type: ignore[no-untyped-def]
        if is_page_request() and (err.code or 500) >= 400:
            return error_page(err.code or 500, None, err.get_headers())
        response = jsonify(
            error={"code": err.name.lower().replace(" ", "_"), "message": err.description}
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
        LOGGER.warning("value refused by the database: %s", (str(err.orig).splitlines() or ["?"])[0])
        return jsonify(
            error={"code": "bad_request", "message": "请求中的值无效 / a value in the request is invalid"}
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

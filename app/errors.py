"""Domain errors that carry their HTTP status (free of Flask: services raise them; the web
layer's ``app.web.errors`` turns them into JSON or a Chinese page)."""

from __future__ import annotations

from typing import Any

from gis.errors import GisError


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

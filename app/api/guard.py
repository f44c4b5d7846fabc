"""Checks at the request boundary, before any view runs.

- Text that PostgreSQL cannot store: a NUL character in a query parameter, a form field, the
  path or a JSON string is refused with 400 naming the field (it would otherwise fail deep in a
  view, or break the audit entry written with the change).
- JSON bodies nested deeper than ``MAX_JSON_DEPTH`` are refused with 400 (Python's parser and
  every recursive walk over the body would otherwise raise ``RecursionError``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider

from app.errors import BadParameter

#: The deepest JSON body accepted (GeoJSON needs 5: a MultiPolygon's coordinates in a Feature).
MAX_JSON_DEPTH = 32
NUL = "\x00"


def _check_json(value: Any) -> None:
    """Refuse a parsed body nested too deeply or holding a NUL in a key or a string."""
    stack: list[tuple[Any, str, int]] = [(value, "body", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                raise BadParameter(where, "must not contain NUL characters")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise BadParameter("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    name = key if where == "body" else f"{where}.{key}"
                    if NUL in key:
                        raise BadParameter(name.replace(NUL, "\\0"), "must not contain NUL")
                    if isinstance(sub, str | dict | list):
                        stack.append((sub, name, depth + 1))
            else:
                for i, sub in enumerate(item):
                    if isinstance(sub, str | dict | list):
                        stack.append((sub, f"{where}[{i}]", depth + 1))


class GuardedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with bodies bounded in depth and free of NUL characters."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = json.loads(s, **kwargs)
        except RecursionError as exc:
            raise BadParameter("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
        # Cheap tests on the raw text first: a walk is needed only when either can fail.
        text = s.decode("utf-8", "replace") if isinstance(s, bytes | bytearray) else s
        if "\\u0000" in text or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
            _check_json(value)
        return value


def _refuse_nul() -> None:
    if NUL in request.path:
        raise BadParameter("path", "must not contain NUL characters")
    for source in (request.args, request.form if _form_body() else None):
        if source is None:
            continue
        for key, values in source.lists():
            key = key or ""  # a multipart part may come without a usable name
            if NUL in key:
                raise BadParameter(key.replace(NUL, "\\0"), "must not contain NUL characters")
            if any(NUL in (v or "") for v in values):
                raise BadParameter(key, "must not contain NUL characters")


def _form_body() -> bool:
    return request.method not in ("GET", "HEAD", "OPTIONS") and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    )


def init_app(app: Flask) -> None:
    provider = GuardedJSONProvider(app)
    provider.ensure_ascii = getattr(app.json, "ensure_ascii", True)
    provider.sort_keys = getattr(app.json, "sort_keys", True)
    app.json = provider
    app.before_request(_refuse_nul)

"""Keep personal data out of the logs: phone and ID numbers in any log line are masked.

Installed once by ``create_app`` as the logging record factory, so it covers every logger —
the app's, SQLAlchemy's, werkzeug's and gunicorn's access log — whatever handler writes them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# Mainland mobile numbers (11 digits from 1[3-9]), landlines with an area code, and the
# 18-character resident ID number; not inside longer runs of digits (codes, coordinates).
_PATTERNS = [
    (re.compile(r"(?<![\d.])(\d{6})\d{8}(\d{3}[\dXx])(?![\d.])"), r"\1********\2"),
    (re.compile(r"(?<![\d.])(1[3-9]\d)\d{4}(\d{4})(?![\d.])"), r"\1****\2"),
    (re.compile(r"(?<![\d.])(0\d{2,3}-)\d{4}(\d{3,4})(?![\d.])"), r"\1****\2"),
]


def mask_text(text: str) -> str:
    """Mask phone and ID numbers in ``text``."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class _MaskedRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802 (logging's name)
        return mask_text(super().getMessage())


_installed = False


def install() -> None:
    """Make every log record mask personal numbers in its message (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.__class__ = _MaskedRecord
        return record

    logging.setLogRecordFactory(factory)
    _installed = True

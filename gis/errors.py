"""Errors of the spatial layer. Each carries the HTTP status a web layer should answer with."""

from __future__ import annotations

from typing import Any


class GisError(Exception):
    """A spatial input the caller must fix; ``details`` may hold a GeoJSON ``location``."""

    http_status = 422
    code = "gis_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class UnknownCRS(GisError):
    """The named coordinate reference system is not one we accept."""

    http_status = 400
    code = "unknown_crs"


class CoordinateError(GisError):
    """Coordinates are out of range, swapped, or projected metres given without a CRS."""

    http_status = 400
    code = "bad_coordinates"

"""Locate points in the grid hierarchy and name who owns them.

``single`` places one point (the rules are described there), ``batch`` many at once with the
same rules, ``formats`` reads batch input (GeoJSON, CSV) and writes the results as CSV.
"""

from app.services.locate.batch import BATCH_METHODS, CSV_COLUMNS, BatchResult, locate_batch
from app.services.locate.formats import parse_points, write_csv
from app.services.locate.single import (
    CHIEF_ROLES,
    COMMAND_CENTRE,
    METHODS,
    NEAREST_TOLERANCE_M,
    WORKER_ROLES,
    apply_override,
    chain_and_people,
    grid_ref,
    locate_point,
    locate_with_session,
    neighbour_owners,
    override_owner,
    person,
    route,
)

__all__ = [
    "BATCH_METHODS",
    "CHIEF_ROLES",
    "COMMAND_CENTRE",
    "CSV_COLUMNS",
    "METHODS",
    "NEAREST_TOLERANCE_M",
    "WORKER_ROLES",
    "BatchResult",
    "apply_override",
    "chain_and_people",
    "grid_ref",
    "locate_batch",
    "locate_point",
    "locate_with_session",
    "neighbour_owners",
    "override_owner",
    "parse_points",
    "person",
    "route",
    "write_csv",
]

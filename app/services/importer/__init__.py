"""Import and export grids, households, workers, service points, cameras and departments.

Every import validates every record first and reports bad ones by row/feature with the reason;
then it loads everything in the caller's transaction, so a failed import leaves nothing behind.
Households are loaded with COPY after their leaf grid is found by location in one bulk pass.

Where the parts live: ``load`` (one file of a kind), ``people``, ``grids``, ``basemap`` and
``points`` (each kind's checks and loading), ``topology`` (the hierarchy check of imported
grids), ``recount`` (household counts), ``sample`` (the sample data set), ``common`` (what the
kinds share).
"""

from app.services.importer.basemap import import_basemap
from app.services.importer.common import (
    BASEMAP_KIND,
    COPY_CHUNK,
    KINDS,
    LINE_KINDS,
    OUTSIDE_SCOPE,
    ROAD_CLASSES,
    SCOPED_KINDS,
    Progress,
    copy_frame,
)
from app.services.importer.grids import import_grids
from app.services.importer.load import import_file
from app.services.importer.people import (
    PHONE,
    import_assignments,
    import_departments,
    import_workers,
)
from app.services.importer.points import (
    import_cameras,
    import_households,
    import_service_points,
    leaf_grids,
)
from app.services.importer.recount import refresh_household_counts
from app.services.importer.sample import (
    SAMPLE_BASEMAP,
    SAMPLE_DIR,
    SAMPLE_FILES,
    is_loaded,
    load_directory,
)
from app.services.importer.topology import TOPOLOGY_TOLERANCE_M2, check_topology

__all__ = [
    "BASEMAP_KIND",
    "COPY_CHUNK",
    "KINDS",
    "LINE_KINDS",
    "OUTSIDE_SCOPE",
    "PHONE",
    "ROAD_CLASSES",
    "SAMPLE_BASEMAP",
    "SAMPLE_DIR",
    "SAMPLE_FILES",
    "SCOPED_KINDS",
    "TOPOLOGY_TOLERANCE_M2",
    "Progress",
    "check_topology",
    "copy_frame",
    "import_assignments",
    "import_basemap",
    "import_cameras",
    "import_departments",
    "import_file",
    "import_grids",
    "import_households",
    "import_service_points",
    "import_workers",
    "is_loaded",
    "leaf_grids",
    "load_directory",
    "refresh_household_counts",
]

"""Settings gunicorn reads when it is started in this folder (``gunicorn app:create_app()``);
``gridgov serve`` sets the same hook itself."""

import gc


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """Leave the objects of the app's start out of the worker's garbage collections: a full
    collection otherwise walks all of them (about 195,000) and holds every thread of the
    worker for 0.5–1.4 s on a loaded machine (load 10), which showed as the slowest tiles."""
    gc.freeze()

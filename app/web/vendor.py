"""Serve browser-side libraries installed from the npm registry (``npm ci``), never from a CDN."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory

bp = Blueprint("vendor", __name__)

# Only these npm packages are exposed, and only their distribution folders.
PACKAGES = {
    "leaflet": "dist",
    "leaflet.markercluster": "dist",
    "@geoman-io/leaflet-geoman-free": "dist",
    "chart.js": "dist",
    "maplibre-gl": "dist",
    # The Leaflet binding of MapLibre GL keeps its script at the package root: only that file.
    "@maplibre/maplibre-gl-leaflet": "leaflet-maplibre-gl.js",
}


def node_modules() -> Path:
    """Return the folder npm installed into (the project root's node_modules by default)."""
    configured = current_app.config.get("NODE_MODULES")
    if configured:
        return Path(configured)
    return Path(current_app.root_path).parent / "node_modules"


def vendor_url(package: str, filename: str) -> str:
    """Return the app URL of a file of an allowed npm package."""
    return f"/vendor/{package}/{filename}"


@bp.get("/vendor/<path:subpath>")
def asset(subpath: str):  # type: ignore[no-untyped-def]
    """Send one file of an allowed package's distribution folder."""
    for package, folder in PACKAGES.items():
        prefix = package + "/"
        if subpath.startswith(prefix):
            name = subpath[len(prefix) :]
            if folder.endswith(".js"):  # a single file of the package
                if name != folder:
                    abort(404, description=f"no such asset: {subpath}")
                name, folder = folder, ""
            root = node_modules() / package / folder
            if not root.is_dir():
                abort(
                    404,
                    description=f"{package} is not installed: run `npm ci` (./scripts/setup.sh does it)",
                )
            resp = send_from_directory(root, name, max_age=86400)
            return resp
    abort(404, description=f"no such asset: {subpath}")

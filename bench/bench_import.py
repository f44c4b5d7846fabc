"""Benchmark the bulk household import: 1,000,000 synthetic households over the sample street.

Prints the time of each stage and the peak memory of the process. Target: under 60 s on a 2-core
machine. Runs against a scratch database ``gridgov_bench`` of the private cluster (or the server in
GRIDGOV_BENCH_DATABASE_URL), which it recreates.

    python bench/bench_import.py [--households 1000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text

from app import create_app
from app import migrate as mig
from app.db import get_db, transaction
from app.embedded_pg import default_cluster
from app.services import importer


def synthetic_households(n: int, seed: int = 7) -> pd.DataFrame:
    """Return n households at random building points inside the sample street's micro-grids."""
    import geopandas as gpd

    grids = gpd.read_file(importer.SAMPLE_DIR / "grids.geojson")
    micro = grids[(grids["level"] == 4) & grids["code"].str.startswith("340188001")]
    rng = np.random.default_rng(seed)
    inner = (
        micro.to_crs(4548).buffer(-2).to_crs(4326)
    )  # 2 m inside: rounding never moves a point out
    buildings = shapely.get_coordinates(
        inner.sample_points(size=max(1, n // (20 * len(micro))) + 1, rng=rng).explode()
    )
    pick = rng.integers(0, len(buildings), n)
    return pd.DataFrame(
        {
            "lon": buildings[pick, 0].round(7),
            "lat": buildings[pick, 1].round(7),
            "building": [f"{k}栋" for k in pick],
            "unit": rng.integers(1, 6, n),
            "room": rng.integers(101, 3300, n),
            "people": rng.integers(1, 6, n),
            "head_name": "测试",
            "head_phone": "13900000000",
            "tags": "",
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1_000_000)
    args = parser.parse_args()

    url = os.environ.get("GRIDGOV_BENCH_DATABASE_URL")
    owner_url = url
    if not url:
        cluster = default_cluster()
        cluster.start()
        url = cluster.recreate_database("gridgov_bench")
        owner_url = cluster.owner_url("gridgov_bench")
    mig.upgrade(owner_url, app_url=url)
    app = create_app({"DATABASE_URL": url})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "households.csv"
        t0 = time.perf_counter()
        synthetic_households(args.households).to_csv(path, index=False)
        print(
            f"generated {args.households:,} households ({path.stat().st_size / 1e6:.0f} MB CSV) in {time.perf_counter() - t0:.1f} s"
        )
        with app.app_context():
            session = get_db().session()
            with transaction(session):
                importer.import_file(session, "grids", importer.SAMPLE_DIR / "grids.geojson")
            stages: dict[str, float] = {}
            last = [time.perf_counter()]

            def progress(stage: str, done: int, total: int) -> None:
                now = time.perf_counter()
                stages[stage] = stages.get(stage, 0.0) + now - last[0]
                last[0] = now

            start = time.perf_counter()
            last[0] = start
            with transaction(session):
                n = importer.import_file(session, "households", path, progress=progress)
                importer.refresh_household_counts(session)
            elapsed = time.perf_counter() - start
            loaded = session.execute(text("SELECT count(*) FROM household")).scalar()
            session.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"imported {n:,} households ({loaded:,} in the table) in {elapsed:.1f} s — {n / elapsed:,.0f} rows/s"
    )
    for stage, secs in stages.items():
        print(f"  until '{stage}': {secs:.1f} s")
    print(f"peak memory of this process: {peak_mb:,.0f} MB")
    print(f"target: under 60 s — {'met' if elapsed < 60 else 'NOT met'}")


if __name__ == "__main__":
    main()

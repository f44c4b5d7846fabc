"""The ceiling for one locate over HTTP: Flask, psycopg and one ``ST_Contains`` query.

No accounts, no routing, no CRS: the micro-grid code of a WGS84 point, served by the same
gunicorn set-up as ``gridgov serve``. Its connections run the generic plan of the prepared
statement, as the app's locate connections do (``app.db.generic_plans``): PostgreSQL's default
plans it afresh on every call at 100k grids, which would make the ceiling needlessly low.
``bench/bench_locate_http.py`` starts it beside the app.
"""

import os
import threading

import psycopg
from flask import Flask, jsonify, request

SQL = """SELECT code FROM grid g WHERE g.valid_to IS NULL
  AND ST_Contains(g.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
  AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
  ORDER BY code COLLATE "C" LIMIT 1"""
app, local = Flask(__name__), threading.local()


@app.get("/api/locate")
def locate():  # type: ignore[no-untyped-def]
    if not hasattr(local, "conn"):
        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        local.conn = psycopg.connect(
            url,
            autocommit=True,
            application_name="gridgov_bench_minimal",
            options="-c plan_cache_mode=force_generic_plan",
        )
    lon, lat = float(request.args["lon"]), float(request.args["lat"])
    row = local.conn.execute(SQL, (lon, lat)).fetchone()
    return jsonify({"code": row[0] if row else None})

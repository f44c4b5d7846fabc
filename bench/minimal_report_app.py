"""The ceiling for one case report over HTTP: Flask, psycopg and one SQL statement.

No accounts, no settings, no calendar, no duplicate search: the report's point is located in
its micro-grid, the worker assigned nearest up the grid tree is taken as the assignee, and the
case is stored dispatched with a deadline and its dispatch event, once per idempotency key (a
retry with a stored key answers 200 with the stored case). Served by the same gunicorn set-up
as ``gridgov serve``; ``bench/bench_cases.py`` starts it beside the app.
"""

import os
import threading

import psycopg
from flask import Flask, jsonify, request

REPORT = """
WITH RECURSIVE leaf AS (
  SELECT g.id FROM grid g WHERE g.valid_to IS NULL
    AND ST_Contains(g.geom, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326))
    AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
  ORDER BY g.code COLLATE "C" LIMIT 1
), up AS (
  SELECT g.id, g.parent_id, 0 AS depth FROM grid g JOIN leaf ON leaf.id = g.id
  UNION ALL
  SELECT g.id, g.parent_id, up.depth + 1 FROM grid g JOIN up ON g.id = up.parent_id
), owner AS (
  SELECT a.worker_id FROM up JOIN grid_assignment a ON a.grid_id = up.id
  ORDER BY up.depth, a.worker_id LIMIT 1
), ins AS (
  INSERT INTO "case" (code, category, description, source, reported_x, reported_y,
                      reported_crs, geom, grid_id, assignee_id, status, deadline,
                      reporter_contact, idempotency_key)
  SELECT 'BM' || %(key)s, %(category)s, %(description)s, %(source)s, %(x)s, %(y)s, 'wgs84',
         ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326), (SELECT id FROM leaf),
         (SELECT worker_id FROM owner), 'dispatched', now() + interval '24 hours',
         %(contact)s, %(key)s
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id, code, grid_id, assignee_id
), event AS (
  INSERT INTO case_event (case_id, action, from_status, to_status, actor)
  SELECT id, 'dispatch', 'reported', 'dispatched', 'minimal' FROM ins
)
SELECT id, code, grid_id, assignee_id FROM ins
"""
STORED = 'SELECT id, code, grid_id, assignee_id FROM "case" WHERE idempotency_key = %s'
app, local = Flask(__name__), threading.local()


@app.post("/api/cases")
def report():  # type: ignore[no-untyped-def]
    if not hasattr(local, "conn"):
        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        local.conn = psycopg.connect(url, autocommit=True, application_name="gridgov_bench_minimal")
    body = request.get_json()
    args = {
        "x": float(body["x"]),
        "y": float(body["y"]),
        "key": body["idempotency_key"],
        "category": body["category"],
        "description": body.get("description"),
        "source": body.get("source", "resident"),
        "contact": body.get("reporter_contact"),
    }
    row = local.conn.execute(REPORT, args).fetchone()
    status = 201
    if row is None:
        row, status = local.conn.execute(STORED, (args["key"],)).fetchone(), 200
    case = {"id": row[0], "code": row[1]}
    return jsonify({"case": case, "routing": {"grid": row[2], "owner": row[3]}}), status


@app.get("/api/case-categories")
def ready():  # type: ignore[no-untyped-def]
    return jsonify([])

"""Fuzz every operation of the OpenAPI description as a grid worker, with every check
schemathesis has (the CLI's ``--checks all``): no 5xx, only documented statuses, content types
and headers, answers that match their schemas, invalid input refused, valid input accepted.

A worker is refused much of the API (403) and sees only its own grids (404 outside): those
answers must be documented too. Runs like tests/api/test_fuzz_openapi.py (the WSGI app inside
the test's rolled-back transaction, derandomized, at most ``MAX_EXAMPLES`` cases an operation).
"""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from app.api.openapi import spec

MAX_EXAMPLES = 8

load_all_checks()
ALL_CHECKS = CHECKS.get_all()
WITHOUT_ACCEPTANCE = [c for c in ALL_CHECKS if c.__name__ != "positive_data_acceptance"]
WITHOUT_REJECTION = [c for c in ALL_CHECKS if c.__name__ != "negative_data_rejection"]

#: Rules of the API that an OpenAPI 3.0 schema cannot state: a 400 naming one of them is the
#: right answer to a request the schema alone calls valid (and nothing else is excused).
UNSTATED_RULES = [
    re.compile(r"must not contain NUL"),  # no NUL in any text or key (PostgreSQL cannot store it)
    re.compile(r"contains a control character"),  # a search text is typed: no control characters
    # parameters that go in pairs, or one of two pairs (lon/lat or x/y)
    re.compile(
        r"give both lon and lat|give both x and y|give the point as|coordinates are required"
    ),
    re.compile(r"min must not exceed max|is out of range \(lon"),  # bbox corners in order, on Earth
    re.compile(r"must be minlon,minlat,maxlon,maxlat|holds a value that is not a number"),
    re.compile(r"^unknown CRS"),  # a CRS name or an EPSG code the registry knows
    re.compile(r"^coordinates: "),  # coordinates checked against their CRS (degrees or metres)
    re.compile(r"时间超出范围"),  # a visit's or check-in's time: not ahead of now, not long past
]

#: 422 answers about data the schema cannot judge: a record named that does not exist, a
#: calendar's reach, a file's content.
UNKNOWN_RECORDS = [
    re.compile(r"^category '.*' is unknown"),
    re.compile(r"^no working time within"),  # a deadline past the working calendar's reach
    re.compile(r"the photo is not a JPEG, PNG or WebP"),  # a file's content, not its type
]


def _checks_for(case, response):  # type: ignore[no-untyped-def]
    if response.status_code in (400, 422):
        try:
            body = response.json()
        except ValueError:
            body = None
        message = (
            body.get("error", {}).get("message", "")
            if isinstance(body, dict)
            else (body[0].get("description", "") if isinstance(body, list) and body else "")
        )
        # A message may carry a Chinese lead before the English one ("不支持的坐标系 / unknown CRS …").
        texts = [message, message.split(" / ", 1)[-1]]
        rules = UNSTATED_RULES if response.status_code == 400 else UNKNOWN_RECORDS
        if any(rule.search(t) for rule in rules for t in texts):
            return WITHOUT_ACCEPTANCE
    if response.status_code < 300:
        query = case.query or {}
        declared = {p.name for p in case.operation.query}
        if any(v == "" for v in query.values()) or set(query) - declared:
            # An empty query parameter is taken as absent (HTML forms send them), and an
            # unknown one is ignored, as HTTP APIs do.
            return WITHOUT_REJECTION
    return ALL_CHECKS


schema = schemathesis.openapi.from_dict(spec())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_worker_gets_no_server_error_and_only_documented_answers(
    case, app, client, accounts
) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {accounts['worker'].token}"}
    case.operation.schema.app = app  # checks that send requests of their own send them here
    response = case.call(app=app, headers=headers)
    case.validate_response(
        response, checks=_checks_for(case, response), headers=headers, transport_kwargs={"app": app}
    )

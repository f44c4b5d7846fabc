"""Fuzz every operation of the OpenAPI description with schemathesis: no answer may be a 5xx.

Each operation is one test; its cases run as the test administrator through the WSGI app inside the test's rolled-back
transaction (the ``client`` fixture), so the writes leave nothing behind. Hypothesis is
derandomized and every operation gets at most ``MAX_EXAMPLES`` generated cases on top of the
described examples and schemathesis' coverage cases. The number of cases run is printed in the
terminal summary ("schemathesis: N cases, M operations, 0 server errors").
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.api.openapi import spec

MAX_EXAMPLES = 12

#: 5xx answers found and not fixed yet: operation -> what breaks (each is a bug to fix).
KNOWN_5XX = {}


class FuzzTally:
    """Counts cases per operation and server errors; reports them at the end of the run."""

    def __init__(self) -> None:
        self.cases: dict[str, int] = {}
        self.server_errors = 0

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        if self.cases:
            terminalreporter.write_line(
                f"schemathesis: {sum(self.cases.values())} cases, {len(self.cases)} operations, "
                f"{self.server_errors} server errors"
            )


TALLY = FuzzTally()


@pytest.fixture(autouse=True)
def _report_tally(request):  # type: ignore[no-untyped-def]
    manager = request.config.pluginmanager
    if not manager.is_registered(TALLY):
        manager.register(TALLY, "gridgov-fuzz-tally")


# The description is read from the file the app serves (test_openapi holds the two equal).
schema = schemathesis.openapi.from_dict(spec())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error(case, app, client, admin_auth, request) -> None:  # type: ignore[no-untyped-def]
    label = case.operation.label
    if label in KNOWN_5XX:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_5XX[label], strict=False))
    TALLY.cases[label] = TALLY.cases.get(label, 0) + 1
    try:
        # As an administrator (a bearer token: no CSRF token needed), so that every operation is
        # exercised past the authorisation check; the roles' refusals are tests/auth's matter.
        response = case.call(
            app=app, headers={"Authorization": f"Bearer {admin_auth['token']}"}
        )  # TESTING: an unhandled error propagates here
    except Exception:
        TALLY.server_errors += 1
        raise
    if response.status_code >= 500:
        TALLY.server_errors += 1
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

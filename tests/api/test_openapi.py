"""The OpenAPI description: a valid document that names every JSON route of the app, no more."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from app.api.openapi import spec

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
PREFIXES = ("/api/", "/open311/v2/")


def _openapi_path(rule: str) -> str:
    """Turn a werkzeug rule (``/api/grids/<int:grid_id>``) into an OpenAPI path."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _app_routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    routes = set()
    for rule in app.url_map.iter_rules():
        path = _openapi_path(rule.rule)
        if not (path.startswith(PREFIXES) or path == "/api"):
            continue
        for method in rule.methods & METHODS:
            routes.add((method, path))
    return routes


def _described(document) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in METHODS
    }


def test_document_is_valid_openapi() -> None:
    validate(spec())


def test_every_api_route_is_described(app) -> None:  # type: ignore[no-untyped-def]
    routes = _app_routes(app)
    described = _described(spec())
    assert len(routes) > 50
    assert routes - described == set(), "routes the description lacks"
    assert described - routes == set(), "described operations the app does not have"


def test_path_parameters_match_the_rules() -> None:
    for path, item in spec()["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, op in item.items():
            if method == "parameters":
                continue
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            declared = {_resolve(p)["name"] for p in params if _resolve(p)["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}"


def test_errors_are_described_with_the_common_body() -> None:
    document = spec()
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            for status, response in op["responses"].items():
                if not status.startswith("4"):
                    continue
                ref = response["$ref"].rsplit("/", 1)[-1]
                expected = "Open311Error" if path.startswith("/open311/") else None
                assert expected is None or ref == expected, f"{method} {path} {status}"
                body = document["components"]["responses"][ref]["content"]["application/json"]
                assert body["schema"]["$ref"].endswith(("/Error", "/Open311Errors"))


def test_security_schemes_are_described_and_public_operations_say_so() -> None:
    schemes = spec()["components"]["securitySchemes"]
    assert schemes["cookieSession"] == {
        **schemes["cookieSession"],
        "type": "apiKey",
        "in": "cookie",
        "name": "gridgov_session",
    }
    assert schemes["csrfToken"]["in"] == "header"
    assert schemes["csrfToken"]["name"] == "X-CSRF-Token"
    document = spec()
    assert document["security"] == [{"bearerToken": []}, {"cookieSession": [], "csrfToken": []}]
    public = {
        (m, path)
        for path, item in document["paths"].items()
        for m, op in item.items()
        if m != "parameters" and {} in op.get("security", [])
    }
    assert ("post", "/api/cases") in public and ("get", "/api/public/cases/{code}") in public
    assert ("get", "/api/cases") not in public and ("get", "/api/audit") not in public


def test_served_document_is_the_description(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == spec()


def _resolve(param):  # type: ignore[no-untyped-def]
    ref = param.get("$ref")
    if not ref:
        return param
    return spec()["components"]["parameters"][ref.rsplit("/", 1)[-1]]

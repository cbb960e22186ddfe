"""The OpenAPI description of ``/api/v1`` and the routes served say the same: every route is
described with the scope it checks, nothing described is missing, and the document is valid
OpenAPI 3.1 (openapi-spec-validator)."""

from __future__ import annotations

import re

import pytest

from gk.api import openapi
from gk.api.service import ROUTES


def test_routes_and_description_match():
    doc = openapi.document()
    served = {(m.lower(), re.sub(r"<(\w+)>", r"{\1}", p)): scope for m, p, scope, _name in ROUTES}
    described = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            (requirement,) = op["security"]
            described[(method, path)] = (requirement["bearer"] or [None])[0]
    assert described == served


def test_description_is_valid_openapi_31():
    validator = pytest.importorskip("openapi_spec_validator")
    doc = openapi.document()
    assert doc["openapi"] == "3.1.0"
    validator.validate(doc)

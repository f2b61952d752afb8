"""problem+json for DRF errors, the core ApplicationError table and the unexpected."""

from __future__ import annotations

import pytest
from rest_framework import exceptions
from rest_framework.test import APIRequestFactory

from gateway.api.exception_handler import api_exception_handler, field_errors
from gateway.core import errors


def _render(exc: Exception):
    request = APIRequestFactory().get("/api/v1/x")
    request.request_id = "req-12345678"
    return api_exception_handler(exc, {"request": request})


@pytest.mark.parametrize(
    ("exc", "status", "type_"),
    [
        (errors.NotFound("No such thing."), 404, "urn:wharf:problem:not-found"),
        (errors.Conflict("Taken."), 409, "urn:wharf:problem:conflict"),
        (errors.ValidationError("Bad."), 400, "urn:wharf:problem:unsupported"),
        (errors.QuotaExceeded("Over quota."), 403, "urn:wharf:problem:denied"),
        (errors.Suspended("Suspended."), 403, "urn:wharf:problem:denied"),
    ],
)
def test_application_errors_render_from_the_core_table(exc, status, type_):
    response = _render(exc)
    assert response.status_code == status == exc.status
    assert response.content_type == "application/problem+json"
    assert response.data == {
        "type": type_,
        "title": response.data["title"],
        "status": status,
        "detail": exc.message,
        "request_id": "req-12345678",
    }


def test_throttled_carries_retry_after():
    response = _render(exceptions.Throttled(wait=7))
    assert response.status_code == 429 and response["Retry-After"] == "7"


def test_unexpected_errors_are_a_500_problem_without_details():
    response = _render(RuntimeError("secret internals"))
    assert response.status_code == 500
    assert "secret" not in str(response.data) and response.data["request_id"] == "req-12345678"


def test_field_paths_of_nested_errors():
    detail = exceptions.ValidationError({"a": {"b": ["bad"]}, "c": [{}, {"d": ["worse"]}], "non_field_errors": ["whole"]}).detail
    assert [(e["field"], e["message"]) for e in field_errors(detail)] == [("a.b", "bad"), ("c.1.d", "worse"), ("", "whole")]


@pytest.mark.django_db
def test_request_id_from_the_client_comes_back_in_the_problem(client):
    response = client.get("/api/v1/user", HTTP_X_REQUEST_ID="client-chosen-id-1")
    assert response.status_code == 401 and response.json()["request_id"] == "client-chosen-id-1"
    assert response["X-Request-ID"] == "client-chosen-id-1"

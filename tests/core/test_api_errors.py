"""Registry clients get spec-shaped JSON errors, never a debug page: uncaught errors (DEBUG on) and storage outages."""

from __future__ import annotations

import logging

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from gateway.core.middleware import ApiErrorMiddleware
from gateway.registry.models import Blob
from gateway.storage import reset_blob_stores
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic, sha


class Boom(RuntimeError):
    pass


def _explode(*args: object, **kwargs: object) -> None:
    raise Boom("secret internals: postgres://wharf@db.internal/wharf")


@pytest.fixture
def owner_reg(db) -> Reg:
    owner = UserFactory(username="errowner")
    make_tenant("errs", owner=owner)
    return Reg(Client(), basic("errowner", make_token(owner)), prefix="/v2/errs")


def _assert_unknown_500(r, caplog) -> None:
    assert r.status_code == 500
    assert r["Content-Type"] == "application/json"
    body = r.json()
    assert body == {
        "errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": {"request_id": r["X-Request-ID"]}}]
    }
    assert b"secret internals" not in r.content and b"Traceback" not in r.content
    records = [rec for rec in caplog.records if rec.name == "gateway.errors"]
    assert len(records) == 1 and records[0].request_id == r["X-Request-ID"]
    assert records[0].exc_info and records[0].exc_info[0] is Boom  # the traceback is in the log, not the response


@pytest.mark.django_db
def test_uncaught_error_under_v2_is_a_json_500_even_with_debug(owner_reg, settings, monkeypatch, caplog):
    settings.DEBUG = True
    monkeypatch.setattr("gateway.registry.selectors.repository_get", _explode)
    with caplog.at_level(logging.ERROR):
        r = owner_reg.get("/v2/errs/app/manifests/1", HTTP_X_REQUEST_ID="req-500-manifest")
    assert r["X-Request-ID"] == "req-500-manifest"
    _assert_unknown_500(r, caplog)


@pytest.mark.django_db
def test_uncaught_error_in_the_token_service_is_a_json_500_even_with_debug(settings, monkeypatch, caplog):
    settings.DEBUG = True
    monkeypatch.setattr("gateway.registry.v2.token.token_sign", _explode)
    with caplog.at_level(logging.ERROR):
        r = Client().get("/auth/token?service=testserver")
    _assert_unknown_500(r, caplog)


def test_a_500_rendered_as_html_elsewhere_is_replaced_on_api_paths():
    html = HttpResponse("<html>Traceback ...</html>", status=500, content_type="text/html")
    middleware = ApiErrorMiddleware(lambda request: html)
    request = RequestFactory().get("/v2/acme/app/tags/list")
    request.request_id = "rid-html-500"
    r = middleware(request)
    assert r.status_code == 500 and r["Content-Type"] == "application/json"
    assert (
        r.content
        == b'{"errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": {"request_id": "rid-html-500"}}]}'
    )
    assert middleware(RequestFactory().get("/admin/")) is html  # other pages keep Django's own


@pytest.mark.django_db
def test_storage_outage_503_names_no_endpoint_bucket_or_key(owner_reg, settings, caplog):
    dead = "http://127.0.0.1:1"
    settings.GATEWAY_S3 = {**settings.GATEWAY_S3, "endpoint_url": dead}
    reset_blob_stores()
    try:
        with caplog.at_level(logging.WARNING):
            r = owner_reg.post(f"/v2/errs/app/blobs/uploads/?digest={sha(b'abc')}", b"abc", HTTP_X_REQUEST_ID="req-503-upload")
    finally:
        reset_blob_stores()
    assert r.status_code == 503 and r["Retry-After"], r.content
    assert r.json() == {
        "errors": [
            {
                "code": "UNAVAILABLE",
                "message": "storage temporarily unavailable, retry later",
                "detail": {"request_id": "req-503-upload"},
            }
        ]
    }
    for secret in ("127.0.0.1:1", settings.GATEWAY_S3["bucket"], "t/", "uploads"):
        assert secret.encode() not in r.content
    logged = " ".join(rec.getMessage() for rec in caplog.records if rec.name == "gateway.registry.v2.base")
    assert "storage unavailable" in logged and "127.0.0.1:1" in logged  # the operator still sees the cause
    assert not Blob.objects.exists()

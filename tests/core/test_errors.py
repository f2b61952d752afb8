"""One table maps domain errors to HTTP (gateway/core/errors.py); RegistryView renders them and OCI errors from it."""

from __future__ import annotations

import inspect
import json

import pytest
from django.test import RequestFactory

from accounts.logins import LoginFailed, LoginThrottled
from gateway.core.errors import ApplicationError, Conflict, NotFound, QuotaExceeded, Suspended, ValidationError
from gateway.registry import errors as oci
from gateway.registry.v2.base import RegistryView

TABLE = [
    (ApplicationError, 403, "DENIED"),
    (ValidationError, 400, "UNSUPPORTED"),
    (NotFound, 404, "NOT_FOUND"),
    (Conflict, 409, "CONFLICT"),
    (QuotaExceeded, 403, "DENIED"),
    (Suspended, 403, "DENIED"),
    (LoginFailed, 401, "UNAUTHORIZED"),
]


class _Raises(RegistryView):
    """A /v2/ view whose handler raises what the test gives it."""

    error: Exception = RuntimeError()
    scope_map = {"GET": "pull"}

    def get(self, request, identity):
        raise self.error


def _v2_answer(error: Exception):
    return _Raises.as_view(error=error)(RequestFactory().get("/v2/"))


@pytest.mark.parametrize("cls,status,code", TABLE)
def test_each_domain_error_has_one_status_and_code(cls, status, code):
    assert (cls.status, cls.code) == (status, code)


@pytest.mark.parametrize("cls,status,code", TABLE)
def test_registry_view_renders_a_domain_error_by_its_status_and_code(cls, status, code):
    r = _v2_answer(cls("nope"))
    assert r.status_code == status
    assert r["Content-Type"] == "application/json" and r["Docker-Distribution-API-Version"] == "registry/2.0"
    assert json.loads(r.content) == {"errors": [{"code": code, "message": "nope"}]}


def test_a_domain_error_brings_its_headers_and_detail():
    r = _v2_answer(LoginThrottled(7))
    assert r.status_code == 429 and r["Retry-After"] == "7"
    assert json.loads(r.content)["errors"][0]["code"] == "TOOMANYREQUESTS"
    r = _v2_answer(QuotaExceeded("storage quota exceeded", extra={"quota": "storage"}))
    assert json.loads(r.content) == {
        "errors": [{"code": "DENIED", "message": "storage quota exceeded", "detail": {"quota": "storage"}}]
    }


def test_registry_view_renders_oci_errors_with_their_own_status():
    r = _v2_answer(oci.RangeInvalid(detail={"range": "0-1"}))
    assert r.status_code == 416
    assert json.loads(r.content) == {
        "errors": [{"code": "BLOB_UPLOAD_INVALID", "message": "requested range not satisfiable", "detail": {"range": "0-1"}}]
    }


def _oci_classes() -> list[type[oci.RegistryError]]:
    return [
        c for _, c in inspect.getmembers(oci, inspect.isclass) if issubclass(c, oci.RegistryError) and c is not oci.RegistryError
    ]


def test_oci_error_classes_have_their_own_names_and_one_class_per_code():
    classes = _oci_classes()
    assert len({c.__name__ for c in classes}) == len(classes)
    by_code: dict[str, list[type[oci.RegistryError]]] = {}
    for c in classes:
        by_code.setdefault(c.code, []).append(c)
    for code, same in by_code.items():
        roots = [c for c in same if c.__bases__ == (oci.RegistryError,)]
        assert len(roots) == 1, code  # one class per code; other statuses of it are its subclasses
        assert all(issubclass(c, roots[0]) for c in same), code

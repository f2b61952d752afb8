"""Conventions of all of /api/: problem+json outside DRF too, 405 with the path's every method in Allow, the schema's
error responses and Idempotency-Key on every operation, filters in the schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.test import Client

from accounts.services import robot_create
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import make_token
from tests.helpers import Reg, basic

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.yaml").read_text())
OPERATIONS = [(path, method, op) for path, item in SCHEMA["paths"].items() for method, op in item.items() if isinstance(op, dict)]
VALUES = {"slug": "acme", "username": "olivia", "name": "team/app", "tag": "v1", "token_id": "1"}


def _concrete(path: str) -> str:
    """`path` with its parameters filled: numeric ids are 1; only repository names have a `/`."""
    values = VALUES if "/repositories/" in path else {**VALUES, "name": "ci"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "1"), path)


def _ref(response: dict) -> str:
    return response.get("$ref", "").rsplit("/", 1)[-1]


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/tenants/acme/nope/deeper", "/api/nope", "/api/v1/"])
def test_unrouted_paths_are_404_problems(client, method, path):
    body = assert_problem(getattr(client, method)(path), 404)
    assert body["type"] == "urn:wharf:problem:not-found"


@pytest.mark.django_db
def test_errors_raised_outside_drf_are_500_problems_without_details(api_read, acme, monkeypatch):
    from gateway.api.views.user import UserGetApi

    def broken(self, request, *args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(UserGetApi, "dispatch", broken)
    response = api_read.get("/api/v1/user")
    body = assert_problem(response, 500)
    assert "secret" not in response.content.decode() and body["detail"] == "internal server error"


@pytest.mark.django_db
def test_registry_errors_keep_their_oci_shape(client):
    response = client.get("/v2/acme/nope/manifests/latest")
    assert response["Content-Type"].startswith("application/json") and "errors" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("path", sorted(SCHEMA["paths"]))
def test_405_allows_every_method_the_path_serves(api_write, acme, path):
    documented = {m.upper() for m, op in SCHEMA["paths"][path].items() if isinstance(op, dict)}
    expected = documented | {"OPTIONS"} | ({"HEAD"} if "GET" in documented else set())
    unserved = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in documented)
    send = getattr(api_write.client, unserved.lower())
    response = send(_concrete(path), {}, content_type="application/json", **api_write.headers)
    assert_problem(response, 405)
    assert set(response["Allow"].split(", ")) == expected


@pytest.mark.django_db
def test_user_tokens_405_lists_post_too(api_write, acme):
    response = api_write.client.put("/api/v1/user/tokens", **api_write.headers)
    assert_problem(response, 405)
    assert response["Allow"] == "GET, HEAD, OPTIONS, POST"


@pytest.mark.django_db
def test_unsupported_methods_are_405_before_roles_and_scopes(client, registry_only, acme):
    """A method the path does not serve is 405 for anyone (the schema is public): not a 403 from a tenant's roles."""
    assert_problem(client.put("/api/v1/tenants/acme/members"), 405)
    assert_problem(registry_only.client.put("/api/v1/tenants/acme/members", **registry_only.headers), 405)


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_every_operation_documents_its_problems(path, method, op):
    responses = op["responses"]
    expected = {"401": "Unauthorized", "403": "Forbidden", "429": "TooManyRequests"}
    if "{" in path:
        expected["404"] = "NotFound"
    if method in ("post", "patch", "put") or any(p["in"] == "query" for p in op.get("parameters", [])):
        expected["400"] = "BadRequest"
    if method == "post":
        expected |= {"409": "Conflict", "422": "UnprocessableContent"}
    if any(p["name"] == "If-Match" for p in op.get("parameters", [])):
        expected |= {"412": "PreconditionFailed", "428": "PreconditionRequired"}
    assert {code: _ref(responses[code]) for code in expected if code in responses} == expected
    success = [r for code, r in responses.items() if code.startswith("2")]
    assert success and all({"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= r["headers"].keys() for r in success)


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_every_post_documents_idempotency_key(path, method, op):
    headers = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "header"}
    assert ("Idempotency-Key" in headers) == (method == "post")
    if method == "post":
        assert not headers["Idempotency-Key"].get("required", False)
        success = [r for code, r in op["responses"].items() if code.startswith("2")]
        assert all("Idempotent-Replayed" in r["headers"] for r in success)


def test_problem_component_and_examples():
    components = SCHEMA["components"]
    assert {"type", "title", "status", "detail", "request_id"} == set(components["schemas"]["Problem"]["required"])
    for name, response in components["responses"].items():
        content = response["content"]["application/problem+json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
        [example] = content["examples"].values()
        assert example["value"]["type"].startswith("urn:wharf:problem:"), name
    assert "Retry-After" in components["responses"]["TooManyRequests"]["headers"]


def test_list_filters_are_in_the_schema():
    params = {p["name"]: p for p in SCHEMA["paths"]["/api/v1/tenants/{slug}/repositories"]["get"]["parameters"]}
    assert params["visibility"]["schema"]["enum"] == ["private", "public"]
    assert params["sort"]["schema"]["enum"] == ["name", "-name", "last_pushed_at", "-last_pushed_at"]
    assert params["prefix"]["schema"] == {"type": "string", "maxLength": 255}
    assert {"cursor", "limit"} <= params.keys()
    tags = {p["name"] for p in SCHEMA["paths"]["/api/v1/tenants/{slug}/repositories/{name}/-/tags"]["get"]["parameters"]}
    assert {"prefix", "cursor", "limit"} <= tags


def test_schema_hook_reaches_operations_it_was_not_told_about():
    """The hook works from the document alone: a new operation gets its problems without code of its own."""
    from gateway.api.schema import problem_responses

    doc = {
        "paths": {
            "/api/v1/things/{id}": {"delete": {"parameters": [{"in": "header", "name": "If-Match"}], "responses": {"204": {}}}}
        }
    }
    responses = problem_responses(doc, None, None, True)["paths"]["/api/v1/things/{id}"]["delete"]["responses"]
    assert set(responses) == {"204", "401", "403", "404", "409", "412", "428", "429"}


WRITE_OPERATIONS = [(p, m) for p, m, _ in OPERATIONS if m in ("post", "put", "patch", "delete")]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), WRITE_OPERATIONS, ids=[f"{m} {p}" for p, m in WRITE_OPERATIONS])
def test_robots_never_write_whatever_their_scopes(acme, path, method):
    robot = Api(robot_create(tenant=acme, name="ci", scopes=["pull", "push", "delete", "api:read", "api:write"]).secret)
    before = snapshot()
    response = getattr(robot.client, method)(
        _concrete(path), {}, content_type="application/json", **robot.headers, HTTP_IF_MATCH="*"
    )
    assert_problem(response, 403)
    assert snapshot() == before


@pytest.mark.django_db
def test_only_api_scopes_count_under_the_api(acme, owner):
    """`api:write` alone deletes a tag (the role allows it); registry `delete` with `api:read` does not."""

    Reg(Client(), basic(owner.username, make_token(owner))).push_image("team/app", "v1", [b"layer"])
    tag = "/api/v1/tenants/acme/repositories/team/app/-/tags/v1"
    assert_problem(Api(token(owner, ["delete", "api:read"])).delete(tag), 403)
    assert Api(token(owner, ["api:write"])).get(tag).status_code == 200
    assert Api(token(owner, ["api:write"])).delete(tag).status_code == 204


@pytest.mark.django_db
@pytest.mark.parametrize("path", [p for p, m, _ in OPERATIONS if m == "get"])
def test_head_and_options_are_reads(acme, path):
    reader = Api(token(acme.memberships.get(role="owner").user, ["api:read"]))
    url = _concrete(path).replace("team/app", "nope").replace("/-/tags/v1", "/-/tags")
    get = reader.get(url)
    assert reader.client.head(url, **reader.headers).status_code == get.status_code
    assert reader.client.options(url, **reader.headers).status_code in (200, get.status_code)

"""Cursor pagination: walking every page by the Link header, limits, bad cursors."""

from __future__ import annotations

import re

import pytest

from accounts.services import access_token_issue
from tests.api.conftest import Api, assert_problem, token

LINK_NEXT = re.compile(r'<([^>]+)>; rel="next"')


def _walk(api: Api, path: str, **params) -> tuple[list[int], int]:
    """Every id on every page, following `Link: rel="next"`; and how many pages there were."""
    ids, pages = [], 0
    response = api.get(path, **params)
    while True:
        assert response.status_code == 200, response.content
        pages += 1
        body = response.json()
        ids += [t["id"] for t in body["results"]]
        match = LINK_NEXT.search(response.get("Link", ""))
        assert (match.group(1) if match else None) == body["next"]
        if not match:
            return ids, pages
        response = api.client.get(match.group(1), **api.headers)


@pytest.mark.django_db
def test_link_header_walks_all_pages_once_each_newest_first(owner):
    api = Api(token(owner, ["api:read"]))
    for i in range(11):
        access_token_issue(user=owner, name=f"t{i}", scopes=["pull"])
    ids, pages = _walk(api, "/api/v1/user/tokens", limit=5)
    assert pages == 3  # 12 tokens (11 + the caller's) in pages of 5
    assert len(ids) == len(set(ids)) == 12
    assert ids == sorted(ids, reverse=True)


@pytest.mark.django_db
def test_rows_added_while_walking_do_not_repeat_or_skip_older_ones(owner):
    api = Api(token(owner, ["api:read"]))
    for i in range(6):
        access_token_issue(user=owner, name=f"t{i}", scopes=["pull"])
    first = api.get("/api/v1/user/tokens", limit=4).json()
    access_token_issue(user=owner, name="late", scopes=["pull"])
    second = api.client.get(first["next"], **api.headers).json()
    seen = [t["id"] for t in first["results"] + second["results"]]
    assert len(seen) == len(set(seen)) == 7 and second["next"] is None


@pytest.mark.django_db
def test_default_limit_is_50(owner):
    api = Api(token(owner, ["api:read"]))
    for i in range(55):
        access_token_issue(user=owner, name=f"t{i}", scopes=["pull"])
    body = api.get("/api/v1/user/tokens").json()
    assert len(body["results"]) == 50 and body["next"]


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten"])
def test_limit_out_of_range_is_a_validation_problem(owner, limit):
    body = assert_problem(Api(token(owner, ["api:read"])).get("/api/v1/user/tokens", limit=limit), 400)
    assert [e["field"] for e in body["errors"]] == ["limit"]


@pytest.mark.django_db
def test_limit_200_is_allowed(owner):
    assert Api(token(owner, ["api:read"])).get("/api/v1/tenants", limit="200").status_code == 200


@pytest.mark.django_db
def test_a_made_up_cursor_is_a_validation_problem(owner):
    body = assert_problem(Api(token(owner, ["api:read"])).get("/api/v1/user/tokens", cursor="bogus"), 400)
    assert [e["field"] for e in body["errors"]] == ["cursor"]


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(owner, django_assert_max_num_queries):
    api = Api(token(owner, ["api:read"]))
    for i in range(60):
        access_token_issue(user=owner, name=f"t{i}", scopes=["pull"])
    with django_assert_max_num_queries(6):
        assert len(api.get("/api/v1/user/tokens", limit=60).json()["results"]) == 60

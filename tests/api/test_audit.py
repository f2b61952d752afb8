"""The audit log: /api/v1/tenants/{slug}/audit-events and …/audit-events.csv — filters, pages, the CSV, the access matrix."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from accounts.audit import audit_record
from accounts.models import AuditEvent, Membership
from tests.api.callers import DENIED, caller
from tests.api.conftest import Api, assert_problem, snapshot

BASE = "/api/v1/tenants/acme/audit-events"
CSV = f"{BASE}.csv"
LINK_NEXT = re.compile(r'<([^>]+)>; rel="next"')
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _event(tenant, action: str, at: datetime, **fields) -> AuditEvent:
    audit_record(tenant=tenant, action=action, actor=fields.pop("actor", "olivia"), **fields)
    event = AuditEvent.objects.latest("pk")
    AuditEvent.objects.filter(pk=event.pk).update(created_at=at)
    return event


@pytest.fixture
def events(acme, other_tenant):
    """Seven acme events an hour apart (T0 … T0+6h), one of globex and one of no tenant at the same times."""
    made = [
        _event(acme, "robot.create", T0, target="ci", detail={"scopes": ["pull"]}),
        _event(acme, "robot.rotate", T0 + timedelta(hours=1), target="ci"),
        _event(acme, "robotics.start", T0 + timedelta(hours=2), target="ci"),  # not under `robot.`
        _event(acme, "membership.set", T0 + timedelta(hours=3), target="rita", detail={"role": "writer"}),
        _event(acme, "tag.delete", T0 + timedelta(hours=4), actor="acme+ci", target="team/app:v1", ip="10.0.0.7"),
        _event(acme, "login.failed", T0 + timedelta(hours=5), actor="rita", success=False, user_agent="curl/8"),
        _event(acme, "tag.delete", T0 + timedelta(hours=6), actor='=HYPERLINK("http://x")', target="-2+3", user_agent="@SUM(A1)"),
    ]
    _event(other_tenant, "robot.create", T0, target="globex-ci")
    _event(None, "login", T0)
    return made


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [e["id"] for e in response.json()["results"]]


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content
    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


# -- the list -----------------------------------------------------------------


@pytest.mark.django_db
def test_list_is_the_tenants_events_newest_first_with_every_field(acme, events, api_read):
    body = api_read.get(BASE).json()
    assert [e["id"] for e in body["results"]] == [e.pk for e in reversed(events)]
    assert body["next"] is None
    tag_delete = body["results"][2]
    assert tag_delete == {
        "id": events[4].pk,
        "created_at": "2026-11-01T16:00:00Z",
        "actor": "acme+ci",
        "action": "tag.delete",
        "target": "team/app:v1",
        "success": True,
        "ip": "10.0.0.7",
        "user_agent": "",
        "detail": {},
    }
    assert body["results"][-1]["detail"] == {"scopes": ["pull"]} and body["results"][-1]["ip"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "robot.create"}, [0]),
        ({"action": "robot."}, [1, 0]),  # a prefix ending in "."; robotics.start is not under it
        ({"action": "robot"}, []),  # no dot: exact
        ({"actor": "acme+ci"}, [4]),
        ({"target": "ci"}, [2, 1, 0]),
        ({"success": "false"}, [5]),
        ({"since": "2026-11-01T15:00:00Z"}, [6, 5, 4, 3]),  # at or after
        ({"until": "2026-11-01T15:00:00Z"}, [2, 1, 0]),  # before
        ({"since": "2026-11-01T13:00:00+01:00", "until": "2026-11-01T14:00:00Z"}, [1, 0]),  # 13:00+01:00 is T0
        ({"since": "2026-11-01", "action": "tag.", "target": "team/app:v1"}, [4]),
    ],
)
def test_filters(acme, events, api_read, params, expected):
    assert _ids(api_read.get(BASE, **params)) == [events[i].pk for i in expected]


FILTER_ERRORS = [
    ({"since": "yesterday"}, ["since"]),
    ({"until": "2026-13-01T00:00:00Z"}, ["until"]),
    ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, ["until"]),
    ({"since": "2026-11-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, ["until"]),
    ({"since": "bad", "until": "worse"}, ["since", "until"]),
    ({"since": "0001-01-01T00:00:00+01:00"}, ["since"]),  # before year 1 in UTC
]


@pytest.mark.django_db
def test_offsets_beyond_what_postgresql_takes_are_converted_to_utc(acme, events, api_read):
    """ISO 8601 allows +18:01; PostgreSQL only ±15:59: the filter compares in UTC (schemathesis found the 500)."""
    assert api_read.get(BASE, since="0519-11-09T12:13:01.304479+18:01").status_code == 200
    assert api_read.get(CSV, until="2999-01-01T00:00:00-23:59").status_code == 200


PAGE_ERRORS = [({"limit": "201"}, ["limit"]), ({"cursor": "forged"}, ["cursor"])]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "params", "fields"),
    [(BASE, p, f) for p, f in FILTER_ERRORS + PAGE_ERRORS] + [(CSV, p, f) for p, f in FILTER_ERRORS],
)
def test_invalid_filters_are_400_problems_with_field_paths(acme, events, api_read, path, params, fields):
    before = snapshot()
    body = assert_problem(api_read.get(path, **params), 400)
    assert sorted(e["field"] for e in body["errors"]) == fields
    assert snapshot() == before


@pytest.mark.django_db
def test_pages_walk_every_event_once_newest_first_even_with_equal_times(acme, api_read):
    made = [_event(acme, "robot.update", T0 + timedelta(minutes=i // 3), target=f"r{i}") for i in range(11)]  # ties of 3
    seen, response = [], api_read.get(BASE, limit=4)
    while True:
        seen += _ids(response)
        match = LINK_NEXT.search(response.get("Link", ""))
        if not match:
            break
        if len(seen) == 4:
            _event(acme, "robot.update", T0 + timedelta(days=1), target="late")  # newer than the walk: not in it
        response = api_read.client.get(match.group(1), **api_read.headers)
    assert seen == [e.pk for e in reversed(made)]  # later times and, among equal times, higher pks first


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(acme, api_read, django_assert_max_num_queries):
    for i in range(60):
        _event(acme, "robot.update", T0 + timedelta(seconds=i), target=f"r{i}")
    with django_assert_max_num_queries(6):
        assert len(_ids(api_read.get(BASE, limit=5))) == 5
    with django_assert_max_num_queries(6):
        assert len(_ids(api_read.get(BASE, limit=60))) == 60


# -- the CSV ------------------------------------------------------------------


def _json_rows(api: Api, **params) -> list[dict]:
    rows, response = [], api.get(BASE, limit=2, **params)
    while True:
        assert response.status_code == 200, response.content
        rows += response.json()["results"]
        if not response.json()["next"]:
            return rows
        response = api.client.get(response.json()["next"], **api.headers)


def _as_json(row: dict[str, str]) -> dict:
    """A CSV row read back into the list's types (undoing the formula guard)."""
    text = {k: v[1:] if v[:2] in {"'=", "'+", "'-", "'@"} else v for k, v in row.items()}
    return {
        **text,
        "id": int(text["id"]),
        "success": {"true": True, "false": False}[text["success"]],
        "ip": text["ip"] or None,
        "detail": json.loads(text["detail"]),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{}, {"action": "tag."}, {"since": "2026-11-01T14:00:00Z", "success": "true"}])
def test_csv_parses_back_to_the_json_list(acme, events, api_read, params):
    response = api_read.get(CSV, **params)
    assert response["Content-Disposition"] == 'attachment; filename="acme-audit-events.csv"'
    rows = _csv(response)
    assert list(rows[0]) == ["id", "created_at", "actor", "action", "target", "success", "ip", "user_agent", "detail"]
    assert [_as_json(r) for r in rows] == _json_rows(api_read, **params)
    assert len(rows) > 0


@pytest.mark.django_db
def test_csv_cells_that_spreadsheets_run_as_formulas_start_with_a_quote(acme, events, api_read):
    _event(acme, "x.y", T0 + timedelta(days=1), actor="\tTAB", target="\rCR", detail={"k": "=1"})
    first, second = _csv(api_read.get(CSV))[:2]
    assert (first["actor"], first["target"], first["detail"]) == ("'\tTAB", "'\rCR", '{"k":"=1"}')
    assert (second["actor"], second["target"], second["user_agent"]) == ('\'=HYPERLINK("http://x")', "'-2+3", "'@SUM(A1)")
    assert _csv(api_read.get(CSV))[3]["actor"] == "acme+ci"  # ordinary cells as they are


@pytest.mark.django_db
def test_csv_streams_every_event_in_constant_queries(acme, api_read, django_assert_max_num_queries):
    AuditEvent.objects.bulk_create(  # more than one cursor chunk and more than one output chunk
        AuditEvent(tenant=acme, actor="olivia", action="robot.update", target=f"r{i}", created_at=T0 + timedelta(seconds=i))
        for i in range(1200)
    )
    with django_assert_max_num_queries(6):
        response = api_read.get(CSV)
        rows = _csv(response)
    assert len(rows) == 1200 and rows[0]["target"] == "r1199" and rows[-1]["target"] == "r0"
    with django_assert_max_num_queries(6):
        assert len(_csv(api_read.get(CSV, until="2026-11-01T12:00:05Z"))) == 5


@pytest.mark.django_db
def test_csv_reads_through_a_server_side_cursor_while_the_body_is_sent(acme, events, api_read):
    cursors: list[str | None] = []
    count = AuditEvent.objects.filter(tenant=acme).count()

    def spy(execute, sql, params, many, context):
        if AuditEvent._meta.db_table in sql:
            cursors.append(getattr(context["cursor"].cursor, "name", None))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        response = api_read.get(CSV)
        assert cursors == []  # the view returned before reading a row
        assert len(_csv(response)) == count
    assert len(cursors) == 1 and cursors[0]  # one named (server-side) cursor: rows arrive in chunks, not all at once


@pytest.mark.django_db
def test_csv_refuses_a_json_only_accept_header(acme, events, api_read):
    response = api_read.client.get(CSV, HTTP_ACCEPT="application/json", **api_read.headers)
    assert_problem(response, 406)
    assert api_read.client.get(CSV, HTTP_ACCEPT="text/csv", **api_read.headers).status_code == 200


# -- access matrix ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "status"), [*DENIED, ("reader", 403), ("writer", 403)])
def test_denied_callers_see_nothing_and_change_nothing(request, acme, events, who, status):
    api = caller(request, acme, who)
    before = snapshot()
    for path in (BASE, CSV):
        body = assert_problem(api.get(path), status)
        assert "results" not in body
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.ADMIN, Membership.Role.OWNER])
@pytest.mark.parametrize("scopes", [["api:read"], ["api:write"]])
def test_admins_and_owners_read_the_log_and_the_csv(acme, events, role, scopes):
    api = caller(None, acme, role, scopes)
    before, count = snapshot(), AuditEvent.objects.filter(tenant=acme).count()
    assert len(_ids(api.get(BASE))) == count
    assert len(_csv(api.get(CSV))) == count
    assert snapshot() == before  # reading the log writes nothing to it


@pytest.mark.django_db
def test_another_tenants_log_is_404_for_an_owner_of_this_one(acme, other_tenant, events, api_read):
    assert_problem(api_read.get("/api/v1/tenants/globex/audit-events"), 404)
    assert_problem(api_read.get("/api/v1/tenants/globex/audit-events.csv"), 404)
    assert_problem(api_read.get("/api/v1/tenants/nope/audit-events"), 404)


@pytest.mark.django_db
def test_the_session_reads_the_log(acme, events, owner):
    from django.test import Client

    client = Client()
    client.force_login(owner)
    assert len(client.get(BASE).json()["results"]) == 7
    assert len(_csv(client.get(CSV))) == 7

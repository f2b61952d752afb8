"""The audit log page (/orgs/<slug>/audit/): the API's filters, keyset pages, the CSV export, admins and owners only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.audit import audit_record
from accounts.models import AuditEvent, User
from accounts.services import access_token_issue
from tests.dashboard.conftest import CALLERS, assert_denied
from tests.dashboard.html import parse, table

pytestmark = pytest.mark.django_db
URL = "/orgs/acme/audit/"
CSV_URL = "/orgs/acme/audit/export.csv"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _event(tenant, action: str, at: datetime, **fields) -> AuditEvent:
    audit_record(tenant=tenant, action=action, actor=fields.pop("actor", "olivia"), **fields)
    event = AuditEvent.objects.latest("pk")
    AuditEvent.objects.filter(pk=event.pk).update(created_at=at)
    event.refresh_from_db()
    return event


@pytest.fixture
def events(tenant, users):
    """Six acme events an hour apart from T0, one of globex at T0 (the membership events of `users` are older: moved to T0-1d)."""
    from accounts.models import Tenant

    AuditEvent.objects.update(created_at=T0 - timedelta(days=1))
    made = [
        _event(tenant, "robot.create", T0, target="ci", detail={"scopes": ["pull"]}),
        _event(tenant, "robot.rotate", T0 + timedelta(hours=1), target="ci"),
        _event(tenant, "robotics.start", T0 + timedelta(hours=2), target="ci"),
        _event(tenant, "tag.delete", T0 + timedelta(hours=3), actor="acme+ci", target="team/app:v1", ip="10.0.0.7"),
        _event(tenant, "login.failed", T0 + timedelta(hours=4), actor="rita", success=False, user_agent="curl/8"),
        _event(tenant, "tag.delete", T0 + timedelta(hours=5), actor="=HYPERLINK(1)", target="-2+3"),
    ]
    _event(Tenant.objects.get(slug="globex"), "robot.create", T0, target="globex-ci")
    return made


def _rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.content[:500]
    return table(response.content, "audit-events")


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("url", [URL, CSV_URL])
def test_audit_access_admins_and_owners_only(as_caller, events, caller, url):
    response = as_caller(caller).get(url)
    if caller in ("admin", "owner"):
        assert response.status_code == 200
    else:
        assert_denied(response, caller)


def test_lists_the_tenants_events_newest_first(as_caller, events, tenant):
    rows = _rows(as_caller("admin").get(URL))
    expected = list(AuditEvent.objects.filter(tenant=tenant).order_by("-created_at", "-pk"))
    assert len(rows) == len(expected) and "globex-ci" not in str(rows)
    assert rows[0] == [f"{T0 + timedelta(hours=5):%Y-%m-%d %H:%M:%S}", "=HYPERLINK(1)", "tag.delete", "-2+3", "ok", ""]
    assert rows[1][1:] == ["rita", "login.failed", "", "refused", ""]
    assert rows[2][1:] == ["acme+ci", "tag.delete", "team/app:v1", "ok", "10.0.0.7"]


@pytest.mark.parametrize(
    ("params", "picks"),
    [
        ({"actor": "rita"}, [4]),
        ({"action": "tag.delete"}, [5, 3]),
        ({"action": "robot."}, [1, 0]),  # a prefix; robotics.start is not under it
        ({"target": "ci"}, [2, 1, 0]),
        ({"success": "false"}, [4]),
        ({"since": "2026-11-01T14:00", "until": "2026-11-01T16:00:00Z"}, [3, 2]),
        ({"since": "2026-11-01T15:00:00+01:00"}, [5, 4, 3, 2]),  # an offset: 14:00 UTC
        ({"action": "robot.", "target": "ci", "until": "2026-11-01T12:30"}, [0]),
    ],
)
def test_filters_select_what_the_api_selects(as_caller, events, params, picks):
    rows = _rows(as_caller("admin").get(URL, params))
    assert [r[2] for r in rows] == [events[i].action for i in picks]
    assert [r[0] for r in rows] == [f"{events[i].created_at:%Y-%m-%d %H:%M:%S}" for i in picks]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, b"Since: Enter a valid date/time."),
        ({"until": "2026-13-01"}, b"Until: Enter a valid date/time."),
        ({"since": "2026-11-02T00:00", "until": "2026-11-01T00:00"}, b"Until: Must be later than since."),
    ],
)
def test_bad_dates_give_a_clear_message_and_list_nothing(as_caller, events, params, message):
    client = as_caller("admin")
    response = client.get(URL, params)
    assert response.status_code == 400
    assert message in response.content and b"Check the filters below" in response.content
    assert "audit-events" not in parse(response.content).tables
    export = client.get(CSV_URL, params)
    assert export.status_code == 400 and message in export.content and not export.streaming


def _page_through(client, params: dict) -> tuple[list[list[list[str]]], int]:
    pages, url, calls = [], URL + "?" + "&".join(f"{k}={v}" for k, v in params.items()), 0
    while url:
        response = client.get(url)
        pages.append(_rows(response))
        nxt = [a for tag, a in parse(response.content).elements if tag == "a" and a.get("rel") == "next"]
        url = URL + nxt[0]["href"].replace("&amp;", "&") if nxt else None
        calls += 1
        assert calls < 10
    return pages, calls


def test_keyset_pages_cover_every_event_once_even_with_equal_timestamps(as_caller, tenant, users):
    AuditEvent.objects.filter(tenant=tenant).delete()
    for i in range(120):
        audit_record(tenant=tenant, action="tag.delete" if i % 2 else "robot.create", actor="olivia", target=f"t{i}")
    AuditEvent.objects.filter(tenant=tenant, pk__in=AuditEvent.objects.filter(tenant=tenant).order_by("pk")[:60]).update(
        created_at=T0
    )  # 60 rows share one timestamp: the pk breaks the tie
    pages, _ = _page_through(as_caller("owner"), {})
    assert [len(p) for p in pages] == [50, 50, 20]
    targets = [row[3] for page in pages for row in page]
    expected = list(AuditEvent.objects.filter(tenant=tenant).order_by("-created_at", "-pk").values_list("target", flat=True))
    assert targets == expected and len(set(targets)) == 120
    filtered, _ = _page_through(as_caller("owner"), {"action": "tag.delete"})  # the filters carry over to the next page
    assert [len(p) for p in filtered] == [50, 10] and {row[2] for page in filtered for row in page} == {"tag.delete"}


def test_a_cursor_not_given_out_shows_the_newest_page_with_a_message(as_caller, events):
    response = as_caller("admin").get(URL, {"after": "garbage"})
    assert response.status_code == 200 and b"That page link is not valid any more" in response.content
    assert _rows(response)[0][2] == "tag.delete"


def _seed(tenant, count: int) -> None:
    AuditEvent.objects.bulk_create(
        AuditEvent(tenant=tenant, actor="olivia", action="tag.delete", target=f"x{i}", created_at=T0 + timedelta(seconds=i))
        for i in range(count)
    )


def test_query_count_is_constant_over_10_and_100_events_and_every_page(as_caller, tenant, django_assert_max_num_queries):
    client = as_caller("admin")
    _seed(tenant, 10)
    with CaptureQueriesContext(connection) as ten:
        assert len(_rows(client.get(URL))) >= 10
    _seed(tenant, 90)
    with django_assert_max_num_queries(len(ten.captured_queries)):
        first = client.get(URL)
        assert len(_rows(first)) == 50
    nxt = [a for tag, a in parse(first.content).elements if tag == "a" and a.get("rel") == "next"][0]["href"]
    with django_assert_max_num_queries(len(ten.captured_queries)):
        assert len(_rows(client.get(URL + nxt.replace("&amp;", "&")))) == 50


@pytest.mark.parametrize("params", [{}, {"action": "tag."}, {"success": "true", "since": "2026-11-01T13:00"}])
def test_csv_is_the_filtered_rows_and_equals_the_apis_export(as_caller, events, tenant, params):
    response = as_caller("admin").get(CSV_URL, params)
    assert response["Content-Disposition"] == 'attachment; filename="acme-audit-events.csv"'
    rows = _csv(response)
    page = _rows(as_caller("admin").get(URL, params))
    assert [(r["actor"].lstrip("'"), r["action"], r["target"].lstrip("'")) for r in rows] == [(p[1], p[2], p[3]) for p in page]
    issued = access_token_issue(user=User.objects.get(username="owner"), name="csv", scopes=["api:read"])
    api = Client().get("/api/v1/tenants/acme/audit-events.csv", params, HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert rows == _csv(api)


def test_csv_quotes_cells_a_spreadsheet_would_run(as_caller, events):
    newest = _csv(as_caller("owner").get(CSV_URL))[0]
    assert newest["actor"] == "'=HYPERLINK(1)" and newest["target"] == "'-2+3"
    robot_create = [r for r in _csv(as_caller("owner").get(CSV_URL, {"action": "robot.create"}))][0]
    assert robot_create["detail"] == '{"scopes":["pull"]}' and robot_create["created_at"] == "2026-11-01T12:00:00Z"
    assert robot_create["success"] == "true" and robot_create["ip"] == ""

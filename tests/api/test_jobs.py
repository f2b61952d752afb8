"""Jobs: /api/v1/tenants/{slug}/jobs[/{id}] and /api/v1/admin/jobs — results, filters, starting jobs, errors, access matrix."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test import Client

from accounts.models import AuditEvent, Membership, Tenant
from gateway.registry.models import JobRun
from tests.api.conftest import Api, assert_problem, snapshot, token
from tests.factories import UserFactory, make_member

BASE = "/api/v1/tenants/acme/jobs"
ADMIN = "/api/v1/admin/jobs"


def rows() -> dict[str, list]:
    """snapshot() plus the job runs a denied request must leave alone."""
    return {**snapshot(), "jobs": list(JobRun.objects.order_by("pk").values("pk", "kind", "state", "dry_run"))}


@pytest.fixture
def runs(acme, other_tenant) -> dict[str, JobRun]:
    """acme: a succeeded GC, a running audit, a failed retention run; globex: a GC."""
    return {
        "gc": JobRun.objects.create(kind="gc", tenant=acme, state="succeeded", bytes_freed=42, counts={"blobs_deleted": 2}),
        "audit": JobRun.objects.create(kind="audit", tenant=acme, counts={"checked": 5}),
        "retention": JobRun.objects.create(kind="retention", tenant=acme, state="failed", errors=[{"error": "boom"}]),
        "other": JobRun.objects.create(kind="gc", tenant=other_tenant, state="succeeded"),
    }


def _member(acme, role: str, scopes=("api:read", "api:write")) -> Api:
    return Api(token(make_member(acme, role, username=f"m-{role}"), scopes))


# -- reading ------------------------------------------------------------------


@pytest.mark.django_db
def test_list_is_newest_first_with_progress(acme, runs, api_read):
    body = api_read.get(BASE).json()
    assert [j["id"] for j in body["results"]] == [runs["retention"].pk, runs["audit"].pk, runs["gc"].pk]
    gc = body["results"][2]
    assert gc == {
        "id": runs["gc"].pk,
        "kind": "gc",
        "tenant": "acme",
        "target": "",
        "state": "succeeded",
        "dry_run": False,
        "started_at": gc["started_at"],
        "heartbeat_at": gc["heartbeat_at"],
        "finished_at": None,
        "counts": {"blobs_deleted": 2},
        "bytes_freed": 42,
        "errors": [],
    }
    assert body["results"][0]["errors"] == [{"error": "boom"}]


@pytest.mark.django_db
def test_list_filters_by_kind_and_state(acme, runs, api_read):
    assert [j["id"] for j in api_read.get(BASE, kind="gc").json()["results"]] == [runs["gc"].pk]
    assert [j["id"] for j in api_read.get(BASE, state="running").json()["results"]] == [runs["audit"].pk]
    assert api_read.get(BASE, kind="gc", state="failed").json()["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"kind": "bogus"}, {"state": "sleeping"}, {"limit": "0"}, {"cursor": "forged"}])
def test_list_validation(acme, runs, api_read, params):
    body = assert_problem(api_read.get(BASE, **params), 400)
    assert [e["field"] for e in body["errors"]] == list(params)


@pytest.mark.django_db
def test_list_pages_walk_every_run_once(acme, api_read):
    made = [JobRun.objects.create(kind="gc", tenant=acme, state="succeeded").pk for _ in range(7)]
    seen, page = [], api_read.get(BASE, limit=3).json()
    while True:
        seen += [j["id"] for j in page["results"]]
        if not page["next"]:
            break
        page = api_read.client.get(page["next"], **api_read.headers).json()
    assert seen == sorted(made, reverse=True)


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_the_page(acme, other_tenant, api_read, staff, django_assert_max_num_queries):
    for i in range(40):
        JobRun.objects.create(kind="gc", tenant=acme if i % 2 else other_tenant, state="succeeded")
    for limit in (2, 40):
        with django_assert_max_num_queries(6):
            assert len(api_read.get(BASE, limit=limit).json()["results"]) == min(limit, 20)
        with django_assert_max_num_queries(6):
            assert len(staff.get(ADMIN, limit=limit).json()["results"]) == limit


@pytest.mark.django_db
def test_get_one_run_and_404_across_tenants(acme, runs, api_read):
    body = api_read.get(f"{BASE}/{runs['audit'].pk}").json()
    assert body["id"] == runs["audit"].pk and body["kind"] == "audit" and body["state"] == "running"
    assert body["counts"] == {"checked": 5}
    assert_problem(api_read.get(f"{BASE}/{runs['other'].pk}"), 404)  # globex's run, through acme
    assert_problem(api_read.get(f"{BASE}/999999"), 404)


# -- starting -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [True, False])
def test_start_gc_queues_a_run_and_its_task(acme, api_write, sent, dry_run, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_write.post(BASE, {"kind": "gc", "dry_run": dry_run})
    assert response.status_code == 202, response.content
    job = JobRun.objects.get(kind="gc", tenant=acme)
    assert response["Location"] == f"{BASE}/{job.pk}"
    body = response.json()
    assert body["id"] == job.pk and body["state"] == "queued" and body["dry_run"] is dry_run and body["tenant"] == "acme"
    assert job.state == JobRun.State.QUEUED and job.dry_run is dry_run
    assert sent == [("gateway.gc.tenant", {"tenant_id": acme.pk, "job_id": job.pk, "dry_run": dry_run}, "gc")]
    event = AuditEvent.objects.get(action="job.start")
    assert event.actor == "olivia" and event.target == "gc" and event.detail == {"job_id": job.pk, "dry_run": dry_run}
    assert api_write.get(response["Location"]).json()["state"] == "queued"


@pytest.mark.django_db
def test_start_audit_queues_the_integrity_audit(acme, api_write, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_write.post(BASE, {"kind": "audit"})
    assert response.status_code == 202, response.content
    job = JobRun.objects.get(kind="audit", tenant=acme)
    assert sent == [("gateway.integrity.audit", {"tenant_id": acme.pk, "run_id": job.pk}, "audit")]


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["queued", "running"])
def test_a_second_gc_while_one_is_active_is_a_conflict(acme, api_write, sent, state, django_capture_on_commit_callbacks):
    active = JobRun.objects.create(kind="gc", tenant=acme, state=state)
    before = rows()
    with django_capture_on_commit_callbacks(execute=True):
        body = assert_problem(api_write.post(BASE, {"kind": "gc"}), 409)
    assert f"job {active.pk}" in body["detail"] and state in body["detail"]
    assert rows() == before and sent == []
    with django_capture_on_commit_callbacks(execute=True):
        assert api_write.post(BASE, {"kind": "audit"}).status_code == 202  # audits may run beside a GC


@pytest.mark.django_db
def test_a_gc_whose_worker_died_does_not_block_a_new_one(acme, api_write, sent, settings):
    settings.GATEWAY_JOB_STALE_SECONDS = 0
    dead = JobRun.objects.create(kind="gc", tenant=acme, state="running")
    assert api_write.post(BASE, {"kind": "gc"}).status_code == 202
    dead.refresh_from_db()
    assert dead.state == JobRun.State.FAILED and "abandoned" in dead.errors[-1]["error"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["kind"]),
        ({"kind": "retention"}, ["kind"]),
        ({"kind": "gc", "dry_run": "maybe"}, ["dry_run"]),
        ({"kind": "audit", "dry_run": True}, ["dry_run"]),
    ],
)
def test_start_validation_changes_nothing(acme, api_write, sent, body, fields):
    before = rows()
    problem = assert_problem(api_write.post(BASE, body), 400)
    assert [e["field"] for e in problem["errors"]] == fields
    assert rows() == before and sent == []


# -- access matrix ------------------------------------------------------------


def _reads(runs) -> list[str]:
    return [BASE, f"{BASE}/{runs['gc'].pk}"]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "revoked", "expired", "registry_only", "outsider", "staff"])
def test_denied_callers_change_nothing(request, acme, runs, sent, who):
    api = Api() if who == "anonymous" else request.getfixturevalue(who)
    status = {"anonymous": 401, "revoked": 401, "expired": 401, "registry_only": 403, "outsider": 404, "staff": 404}[who]
    before = rows()
    for path in _reads(runs):
        assert_problem(api.get(path), status)
    assert_problem(api.post(BASE, {"kind": "gc"}), status)
    assert rows() == before and sent == []


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["api_read", Membership.Role.READER, Membership.Role.WRITER])
def test_readers_writers_and_read_tokens_read_but_cannot_start(request, acme, runs, sent, who):
    api = request.getfixturevalue(who) if who == "api_read" else _member(acme, who)
    for path in _reads(runs):
        assert api.get(path).status_code == 200, path
    before = rows()
    assert_problem(api.post(BASE, {"kind": "gc"}), 403)
    assert rows() == before and sent == []


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.ADMIN, Membership.Role.OWNER])
def test_admins_and_owners_start_jobs(acme, sent, role):
    api = _member(acme, role, scopes=["api:write"])
    assert api.post(BASE, {"kind": "audit"}).status_code == 202
    assert AuditEvent.objects.filter(action="job.start", actor=f"m-{role}").exists()


@pytest.mark.django_db
def test_a_robot_is_not_a_member_here(acme, runs):
    from accounts.services import robot_create

    robot = Api(robot_create(tenant=acme, name="ci", scopes=["api:read", "api:write"]).secret)
    before = rows()
    assert_problem(robot.get(BASE), 403)
    assert_problem(robot.post(BASE, {"kind": "gc"}), 403)
    assert rows() == before


# -- staff: every tenant's runs -----------------------------------------------


@pytest.mark.django_db
def test_staff_list_every_tenant_and_filter(acme, runs, staff):
    body = staff.get(ADMIN).json()
    assert [j["id"] for j in body["results"]] == sorted((r.pk for r in runs.values()), reverse=True)
    assert {j["tenant"] for j in body["results"]} == {"acme", "globex"}
    assert [j["id"] for j in staff.get(ADMIN, tenant="globex").json()["results"]] == [runs["other"].pk]
    assert [j["id"] for j in staff.get(ADMIN, tenant="acme", kind="gc").json()["results"]] == [runs["gc"].pk]
    assert [j["id"] for j in staff.get(ADMIN, state="failed").json()["results"]] == [runs["retention"].pk]
    assert staff.get(ADMIN, tenant="nobody").json()["results"] == []
    problem = assert_problem(staff.get(ADMIN, kind="bogus"), 400)
    assert [e["field"] for e in problem["errors"]] == ["kind"]


@pytest.mark.django_db
def test_staff_session_reads_the_admin_list(runs):
    user = UserFactory(username="sue", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(ADMIN).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "revoked", "api_write", "outsider", "staff_without_admin", "robot"])
def test_only_staff_with_the_admin_scope_see_every_tenant(request, acme, runs, who):
    from accounts.services import robot_create

    status = {"anonymous": 401, "revoked": 401}.get(who, 403)  # one rule for /admin/ (decision 0023)
    if who == "anonymous":
        api = Api()
    elif who == "staff_without_admin":
        api = Api(token(UserFactory(username="stan", is_staff=True), ["api:read", "api:write"]))
    elif who == "robot":
        api = Api(robot_create(tenant=acme, name="ci", scopes=["api:read"]).secret)
    else:
        api = request.getfixturevalue(who)
    before = rows()
    assert_problem(api.get(ADMIN), status)
    assert rows() == before


@pytest.mark.django_db(transaction=True)
def test_two_gc_starts_at_once_make_one_run(acme, api_write, sent):
    """Both requests wait on the tenant row (held here), then go one after the other: one 202, one 409."""
    statuses: list[int] = []

    def start() -> None:
        try:
            statuses.append(api_write.post(BASE, {"kind": "gc"}).status_code)
        finally:
            connection.close()

    with transaction.atomic():
        list(Tenant.objects.select_for_update().filter(pk=acme.pk))
        threads = [threading.Thread(target=start) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # both are now waiting for the row lock
        assert statuses == []
    for t in threads:
        t.join(30)
    connections.close_all()
    assert sorted(statuses) == [202, 409]
    assert JobRun.objects.filter(kind="gc", tenant=acme).count() == 1 and len(sent) == 1

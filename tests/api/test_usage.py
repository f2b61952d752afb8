"""Usage: /api/v1/tenants/{slug}/usage — storage now and pulls per day, from real pushes and pulls through /v2/."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from accounts.models import Membership
from gateway.registry import access
from gateway.registry.models import UsageEvent
from gateway.registry.services import events, stream
from gateway.registry.services.repositories import repository_ensure
from gateway.registry.services.stream import events_flush
from tests.api.callers import DENIED, caller
from tests.api.conftest import assert_problem, snapshot
from tests.factories import make_member, make_token
from tests.helpers import Reg, basic, sha

BASE = "/api/v1/tenants/acme/usage"
OCI = "application/vnd.oci.image.manifest.v1+json"
CONFIG = b'{"architecture":"amd64","os":"linux"}'  # Reg.push_image's default config: in both images, so shared
SHARED, APP_ONLY, WEB_ONLY = b"shared-base-layer", b"app-layer-1234", b"web-layer-56789012"


@pytest.fixture(autouse=True)
def _empty_queue(redis_client):
    keys = (events.QUEUE_KEY, stream.PROCESSING_KEY, stream.BATCH_KEY)
    redis_client.delete(*keys)
    yield
    redis_client.delete(*keys)


def _today():
    return datetime.now(UTC).date()


@pytest.fixture
def reg(owner, acme) -> Reg:
    return Reg(Client(), basic(owner.username, make_token(owner)))


@pytest.fixture
def images(reg):
    """team/app (SHARED, APP_ONLY) and team/web (SHARED, WEB_ONLY), both with the same config blob; the push events flushed."""
    app = reg.push_image("team/app", "v1", [SHARED, APP_ONLY])
    web = reg.push_image("team/web", "v1", [SHARED, WEB_ONLY])
    events_flush()
    return {"team/app": app[1], "team/web": web[1]}


def rows() -> dict[str, list]:
    return {**snapshot(), "usage": list(UsageEvent.objects.order_by("pk").values_list("pk", flat=True))}


# -- storage ------------------------------------------------------------------


@pytest.mark.django_db
def test_storage_counts_a_shared_layer_once_as_shared_and_never_as_unique(images, api_read):
    app, web = len(images["team/app"]), len(images["team/web"])
    storage = api_read.get(BASE).json()["storage"]
    assert storage == {
        "stored_bytes": app + web + len(CONFIG) + len(SHARED) + len(APP_ONLY) + len(WEB_ONLY),
        "manifest_bytes": app + web,
        "unique_bytes": len(APP_ONLY) + len(WEB_ONLY),
        "shared_bytes": len(CONFIG) + len(SHARED),
        "unreferenced_bytes": 0,
        "repositories": [
            {
                "name": "team/app",
                "stored_bytes": app + len(CONFIG) + len(SHARED) + len(APP_ONLY),
                "manifest_bytes": app,
                "unique_bytes": len(APP_ONLY),
            },
            {
                "name": "team/web",
                "stored_bytes": web + len(CONFIG) + len(SHARED) + len(WEB_ONLY),
                "manifest_bytes": web,
                "unique_bytes": len(WEB_ONLY),
            },
        ],
    }
    for repository in storage["repositories"]:  # the same figure as the repository's own GET
        detail = api_read.get(f"/api/v1/tenants/acme/repositories/{repository['name']}").json()
        assert detail["stored_bytes"] == repository["stored_bytes"]


@pytest.mark.django_db
def test_an_unlinked_blob_is_unreferenced_until_gc(acme, reg, images, api_read):
    stray = b"pushed-then-deleted"
    reg.push_blob("team/app", stray)
    assert api_read.get(BASE).json()["storage"]["repositories"][0]["unique_bytes"] == len(APP_ONLY) + len(stray)
    assert reg.delete(f"/v2/acme/team/app/blobs/{sha(stray)}").status_code == 202  # unlinked; GC reclaims it later
    storage = api_read.get(BASE).json()["storage"]
    assert storage["unreferenced_bytes"] == len(stray)
    assert storage["repositories"][0]["unique_bytes"] == len(APP_ONLY)
    assert storage["stored_bytes"] == sum(
        storage[k] for k in ("manifest_bytes", "unique_bytes", "shared_bytes", "unreferenced_bytes")
    )


@pytest.mark.django_db
def test_an_empty_tenant_has_zeros_and_every_day(acme, api_read):
    body = api_read.get(BASE).json()
    assert body["storage"] == {
        "stored_bytes": 0,
        "manifest_bytes": 0,
        "unique_bytes": 0,
        "shared_bytes": 0,
        "unreferenced_bytes": 0,
        "repositories": [],
    }
    traffic = body["traffic"]
    assert traffic["until"] == _today().isoformat() and traffic["since"] == (_today() - timedelta(days=29)).isoformat()
    assert len(traffic["days"]) == 30 and traffic["days"][-1]["date"] == _today().isoformat()
    assert all(d == {"date": d["date"], "egress_bytes": 0, "pulls": 0, "repositories": []} for d in traffic["days"])
    assert (traffic["egress_bytes"], traffic["pulls"], traffic["repositories"]) == (0, 0, [])


# -- traffic ------------------------------------------------------------------


@pytest.fixture
def pulls(acme, other_tenant, reg, images):
    """Pulls through /v2/ (flushed): today team/app's manifest twice, a shared blob, a 4-byte range and a redirected
    blob of team/web; team/web's manifest moved to 3 days ago, one team/app blob pull to 40 days ago; globex's own pulls.
    """
    for _ in range(2):
        assert reg.get("/v2/acme/team/app/manifests/v1", HTTP_ACCEPT=OCI).status_code == 200
    assert reg.head("/v2/acme/team/app/manifests/v1", HTTP_ACCEPT=OCI).status_code == 200  # a HEAD is no pull
    assert reg.head(f"/v2/acme/team/app/blobs/{sha(SHARED)}").status_code == 200
    assert b"".join(reg.get(f"/v2/acme/team/app/blobs/{sha(SHARED)}").streaming_content) == SHARED
    ranged = reg.get(f"/v2/acme/team/app/blobs/{sha(APP_ONLY)}", HTTP_RANGE="bytes=0-3")
    assert ranged.status_code == 206 and b"".join(ranged.streaming_content) == APP_ONLY[:4]
    assert reg.get("/v2/acme/team/web/manifests/v1", HTTP_ACCEPT=OCI).status_code == 200
    acme.redirect_blob_downloads = True
    acme.save(update_fields=["redirect_blob_downloads"])
    access.caches_clear()  # the registry caches tenants per process
    assert reg.get(f"/v2/acme/team/web/blobs/{sha(WEB_ONLY)}").status_code == 307
    assert reg.get(f"/v2/acme/team/app/blobs/{sha(CONFIG)}").status_code == 307
    globex = Reg(Client(), basic("gus", make_token(make_member(other_tenant, "owner", username="gus"))), prefix="/v2/globex")
    globex.push_image("team/app", "v1", [SHARED])
    assert globex.get("/v2/globex/team/app/manifests/v1", HTTP_ACCEPT=OCI).status_code == 200
    events_flush()
    now = datetime.now(UTC)
    pulled = UsageEvent.objects.filter(tenant=acme, direction="pull")
    pulled.filter(repository_name="team/web", kind="manifest").update(occurred_at=now - timedelta(days=3))
    pulled.filter(digest=sha(CONFIG)).update(occurred_at=now - timedelta(days=40))
    return images


@pytest.mark.django_db
def test_egress_and_pulls_per_day_total_and_per_repository(pulls, api_read):
    app, web = len(pulls["team/app"]), len(pulls["team/web"])
    traffic = api_read.get(BASE).json()["traffic"]
    today_app = {"name": "team/app", "egress_bytes": 2 * app + len(SHARED) + 4, "pulls": 2}
    today_web = {"name": "team/web", "egress_bytes": len(WEB_ONLY), "pulls": 0}  # a redirected blob counts its size
    assert traffic["days"][-1] == {
        "date": _today().isoformat(),
        "egress_bytes": today_app["egress_bytes"] + today_web["egress_bytes"],
        "pulls": 2,
        "repositories": [today_app, today_web],
    }
    assert traffic["days"][-4] == {
        "date": (_today() - timedelta(days=3)).isoformat(),
        "egress_bytes": web,
        "pulls": 1,
        "repositories": [{"name": "team/web", "egress_bytes": web, "pulls": 1}],
    }
    assert [d["egress_bytes"] for d in traffic["days"][:-4] + traffic["days"][-3:-1]] == [0] * 28  # the 40-day-old pull is out
    assert traffic["repositories"] == [today_app, {"name": "team/web", "egress_bytes": len(WEB_ONLY) + web, "pulls": 1}]
    assert (traffic["egress_bytes"], traffic["pulls"]) == (today_app["egress_bytes"] + len(WEB_ONLY) + web, 3)


@pytest.mark.django_db
def test_a_chosen_period(pulls, api_read):
    three_days_ago = (_today() - timedelta(days=3)).isoformat()
    traffic = api_read.get(BASE, since=three_days_ago, until=three_days_ago).json()["traffic"]
    assert (traffic["since"], traffic["until"], len(traffic["days"])) == (three_days_ago, three_days_ago, 1)
    assert (traffic["egress_bytes"], traffic["pulls"]) == (len(pulls["team/web"]), 1)
    old = api_read.get(BASE, since=(_today() - timedelta(days=45)).isoformat(), until=(_today() - timedelta(days=35)).isoformat())
    traffic = old.json()["traffic"]
    assert len(traffic["days"]) == 11
    assert traffic["repositories"] == [{"name": "team/app", "egress_bytes": len(CONFIG), "pulls": 0}]
    whole_year = api_read.get(BASE, since=(_today() - timedelta(days=365)).isoformat()).json()["traffic"]
    assert len(whole_year["days"]) == 366 and whole_year["pulls"] == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"since": "last-week"}, ["since"]),
        ({"until": "2026-02-30"}, ["until"]),
        ({"since": "2026-11-01T00:00:00Z"}, ["since"]),
        ({"since": "2026-11-02", "until": "2026-11-01"}, ["until"]),
        ({"since": "2025-10-31", "until": "2026-11-01"}, ["since"]),  # 367 days
        ({"since": "2000-01-01"}, ["since"]),  # until defaults to today
    ],
)
def test_invalid_periods_are_400_problems_with_field_paths(acme, api_read, params, fields):
    before = rows()
    body = assert_problem(api_read.get(BASE, **params), 400)
    assert [e["field"] for e in body["errors"]] == fields
    assert rows() == before


@pytest.mark.django_db
def test_queries_do_not_grow_with_repositories_or_days(acme, pulls, api_read, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        assert api_read.get(BASE).status_code == 200
    now, batch = datetime.now(UTC), uuid.uuid4()
    for i in range(25):  # 25 more repositories, each pulled from on another day
        repository_ensure(tenant=acme, name=f"r{i}")
    UsageEvent.objects.bulk_create(
        UsageEvent(
            tenant=acme,
            repository_name=f"r{i}",
            digest=sha(b"m"),
            bytes=10,
            kind="manifest",
            direction="pull",
            occurred_at=now - timedelta(days=i * 10),
            batch=batch,
            seq=i,
        )
        for i in range(25)
    )
    with django_assert_max_num_queries(6):
        body = api_read.get(BASE, since=(_today() - timedelta(days=365)).isoformat()).json()
    assert len(body["storage"]["repositories"]) == 27 and len(body["traffic"]["repositories"]) == 27


# -- access matrix ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "status"), DENIED)
def test_denied_callers_see_nothing_and_change_nothing(request, acme, images, who, status):
    api = caller(request, acme, who)  # robots and narrowed tokens too: usage covers every repository
    before = rows()
    body = assert_problem(api.get(BASE), status)
    assert "storage" not in body
    assert rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(Membership.Role))
@pytest.mark.parametrize("scopes", [["api:read"], ["api:write"]])
def test_every_member_reads_usage(acme, images, role, scopes):
    api = caller(None, acme, role, scopes)
    before = rows()
    body = api.get(BASE).json()
    assert body["storage"]["shared_bytes"] == len(CONFIG) + len(SHARED)
    assert rows() == before  # reading usage records nothing


@pytest.mark.django_db
def test_another_tenants_usage_is_404(acme, other_tenant, api_read):
    assert_problem(api_read.get("/api/v1/tenants/globex/usage"), 404)
    assert_problem(api_read.get("/api/v1/tenants/nope/usage"), 404)


@pytest.mark.django_db
def test_the_session_reads_usage(acme, images, owner):
    client = Client()
    client.force_login(owner)
    assert client.get(BASE).json()["storage"]["unique_bytes"] == len(APP_ONLY) + len(WEB_ONLY)

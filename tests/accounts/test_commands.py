"""The operator commands, end to end in a subprocess, with their exact output formats."""

import json

import pytest

from accounts.models import Membership, PersonalAccessToken, Tenant, User
from accounts.services import hash_secret
from tests.helpers import manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_tenant_creates_owner_and_prints_json():
    r = manage("create_tenant", "acme", "--owner", "alice", "--email", "a@example.com", "--password-stdin", input="s3cret-pw\n")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    tenant = Tenant.objects.get(slug="acme")
    alice = User.objects.get(username="alice")
    assert out == {"tenant": {"id": tenant.pk, "slug": "acme"}, "owner": {"id": alice.pk, "username": "alice", "created": True}}
    assert alice.check_password("s3cret-pw")
    assert Membership.objects.get(tenant=tenant, user=alice).role == "owner"

    r = manage("create_tenant", "beta", "--owner", "alice")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["owner"]["created"] is False


@pytest.mark.parametrize("slug,msg", [("Bad_Slug", "DNS label"), ("admin", "reserved")])
def test_create_tenant_refuses_bad_slugs_and_creates_nothing(slug, msg):
    r = manage("create_tenant", slug, "--owner", "bob")
    assert r.returncode != 0
    assert msg in r.stderr
    assert not Tenant.objects.exists()


def test_create_tenant_twice_is_a_clear_error():
    assert manage("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = manage("create_tenant", "acme", "--owner", "alice")
    assert r.returncode != 0 and "already exists" in r.stderr


def test_create_token_prints_the_secret_alone():
    assert manage("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = manage("create_token", "alice", "--name", "ci", "--scopes", "pull,push", "--expires-days", "30")
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert r.stdout == secret + "\n" and secret.startswith("wharf_pat_")
    token = PersonalAccessToken.objects.get(token_hash=hash_secret(secret))
    assert token.name == "ci" and token.scopes == ["pull", "push"] and token.expires_at is not None


@pytest.mark.parametrize(
    "args,msg", [(["nobody"], "No user 'nobody'"), (["alice", "--scopes", "pull,fly"], "scopes"), (["alice", "--expires-days", "0"], "3650")]
)
def test_create_token_errors(args, msg):
    assert manage("create_tenant", "acme", "--owner", "alice").returncode == 0
    r = manage("create_token", *args)
    assert r.returncode != 0 and msg in r.stderr
    assert not PersonalAccessToken.objects.exists()

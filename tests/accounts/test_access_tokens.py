from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, PersonalAccessToken
from accounts.secrets import hash_secret
from accounts.selectors import Principal, access_token_find, credentials_check
from accounts.services import access_token_issue, access_token_revoke
from gateway.core.errors import NotFound, ValidationError
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_secret_is_random_shown_once_and_stored_hashed():
    user = UserFactory()
    a = access_token_issue(user=user, name="ci")
    b = access_token_issue(user=user, name="ci")
    assert a.secret != b.secret and a.secret.startswith("wharf_pat_") and len(a.secret) > 40
    row = PersonalAccessToken.objects.get(pk=a.token.pk)
    assert row.token_hash == hash_secret(a.secret)
    assert a.secret not in {row.token_hash, row.prefix, row.name}
    assert a.secret.startswith(row.prefix)


def test_find_and_credentials_check_record_last_use():
    user = UserFactory(username="alice")
    issued = access_token_issue(user=user, name="laptop", scopes=["pull"])
    assert access_token_find(secret=issued.secret).pk == issued.token.pk
    found = credentials_check(username="alice", secret=issued.secret)
    assert found == Principal(
        kind="user",
        name="alice",
        user=user,
        robot=None,
        tenant_id=None,
        scopes=("pull",),
        repositories=(),
        access_token=issued.token,
    )
    assert PersonalAccessToken.objects.get(pk=issued.token.pk).last_used_at is not None
    assert credentials_check(username="bob", secret=issued.secret) is None
    assert access_token_find(secret=issued.secret + "x") is None
    assert access_token_find(secret="not-a-token") is None


def test_password_credentials_still_work():
    user = UserFactory(username="carol")
    found = credentials_check(username="carol", secret="pw-secret-123")
    assert found == Principal(kind="user", name="carol", user=user, robot=None, tenant_id=None, scopes=None, repositories=())
    assert credentials_check(username="carol", secret="wrong") is None


def test_every_failure_is_the_same_none():
    user = UserFactory(username="dave")
    issued = access_token_issue(user=user, name="t")
    for username, secret in [
        ("dave", "wrong"),
        ("nobody", "pw-secret-123"),
        ("nobody", issued.secret),
        ("", "pw-secret-123"),
        ("dave", ""),
        ("dave", "wharf_pat_" + "x" * 43),
        ("dave", "wharf_rbt_" + "x" * 43),
        ("Dave", issued.secret),
    ]:
        assert credentials_check(username=username, secret=secret) is None, (username, secret)
    user.is_active = False
    user.save()
    assert credentials_check(username="dave", secret="pw-secret-123") is None
    assert credentials_check(username="dave", secret=issued.secret) is None


def test_last_use_is_recorded_at_most_once_a_minute():
    user = UserFactory(username="erin")
    issued = access_token_issue(user=user, name="t")
    credentials_check(username="erin", secret=issued.secret)
    first = PersonalAccessToken.objects.get(pk=issued.token.pk).last_used_at
    credentials_check(username="erin", secret=issued.secret)
    assert PersonalAccessToken.objects.get(pk=issued.token.pk).last_used_at == first
    PersonalAccessToken.objects.filter(pk=issued.token.pk).update(last_used_at=first - timedelta(seconds=61))
    credentials_check(username="erin", secret=issued.secret)
    assert PersonalAccessToken.objects.get(pk=issued.token.pk).last_used_at > first


def test_repository_patterns_are_stored_and_carried_by_the_principal():
    user = UserFactory(username="frank")
    issued = access_token_issue(user=user, name="ci", scopes=["pull", "push"], repositories=[" team/* ", "tools/build", "team/*"])
    assert PersonalAccessToken.objects.get(pk=issued.token.pk).repositories == ["team/*", "tools/build"]
    principal = credentials_check(username="frank", secret=issued.secret)
    assert principal.scopes == ("pull", "push") and principal.repositories == ("team/*", "tools/build")
    assert principal.repository_allowed("team/app") and principal.repository_allowed("team/a/b")
    assert principal.repository_allowed("tools/build") and not principal.repository_allowed("tools/other")
    assert not principal.repository_allowed("Team/app")
    unrestricted = credentials_check(username="frank", secret=access_token_issue(user=user, name="all").secret)
    assert unrestricted.repositories == () and unrestricted.repository_allowed("anything/at/all")


@pytest.mark.parametrize(
    "patterns,msg",
    [
        (["Team/*"], "lower-case"),
        ([""], "1 to 255"),
        (["/abs"], "empty path"),
        (["a//b"], "empty path"),
        ("team/*", "a list"),
        (["a b"], "lower-case"),
        ([7], "string"),
    ],
)
def test_bad_repository_patterns_are_refused_and_store_nothing(patterns, msg):
    with pytest.raises(ValidationError, match=msg):
        access_token_issue(user=UserFactory(), name="x", repositories=patterns)
    assert PersonalAccessToken.objects.count() == 0


def test_issue_and_revoke_are_audited():
    user = UserFactory(username="gina")
    issued = access_token_issue(user=user, name="ci", repositories=["a/*"])
    access_token_revoke(user=user, token_id=issued.token.pk, actor="admin")
    access_token_revoke(user=user, token_id=issued.token.pk, actor="admin")  # a no-op, not audited twice
    events = list(AuditEvent.objects.order_by("pk").values_list("action", "actor", "tenant_id"))
    assert events == [("token.issue", "gina", None), ("token.revoke", "admin", None)]
    issue = AuditEvent.objects.get(action="token.issue")
    assert issue.detail["repositories"] == ["a/*"] and issued.secret not in str(issue.detail) + issue.target


def test_expired_tokens_do_not_authenticate():
    user = UserFactory()
    issued = access_token_issue(user=user, name="short", expires_in_days=1)
    PersonalAccessToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert access_token_find(secret=issued.secret) is None


def test_revoked_tokens_do_not_authenticate_and_revoke_is_idempotent():
    user = UserFactory()
    issued = access_token_issue(user=user, name="old")
    access_token_revoke(user=user, token_id=issued.token.pk)
    access_token_revoke(user=user, token_id=issued.token.pk)
    assert access_token_find(secret=issued.secret) is None
    with pytest.raises(NotFound):
        access_token_revoke(user=UserFactory(), token_id=issued.token.pk)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"name": ""}, "name"),
        ({"name": "x", "scopes": ["admin"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "expires_in_days": 0}, "1 to 3650"),
    ],
)
def test_bad_token_requests_are_refused_and_store_nothing(kwargs, msg):
    user = UserFactory()
    with pytest.raises(ValidationError, match=msg):
        access_token_issue(user=user, **kwargs)
    assert PersonalAccessToken.objects.count() == 0

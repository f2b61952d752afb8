from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import PersonalAccessToken
from accounts.selectors import access_token_find, credentials_check
from accounts.services import access_token_issue, access_token_revoke, hash_secret
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
    assert found == (user, ("pull",))
    assert PersonalAccessToken.objects.get(pk=issued.token.pk).last_used_at is not None
    assert credentials_check(username="bob", secret=issued.secret) is None
    assert access_token_find(secret=issued.secret + "x") is None
    assert access_token_find(secret="not-a-token") is None


def test_password_credentials_still_work():
    user = UserFactory(username="carol")
    assert credentials_check(username="carol", secret="pw-secret-123") == (user, None)
    assert credentials_check(username="carol", secret="wrong") is None


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

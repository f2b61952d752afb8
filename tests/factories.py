"""factory_boy factories; tenants and tokens are made through the services."""

from __future__ import annotations

import factory

from accounts.models import User
from accounts.services import access_token_issue, membership_set, tenant_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-secret-123")


def make_tenant(slug: str, *, owner: User | None = None):
    owner = owner or UserFactory()
    return tenant_create(slug=slug, owner=owner)


def make_member(tenant, role: str, **user_kwargs) -> User:
    user = UserFactory(**user_kwargs)
    membership_set(tenant=tenant, user=user, role=role)
    return user


def make_token(user: User, scopes=("pull", "push", "delete"), **kwargs) -> str:
    return access_token_issue(user=user, name="test", scopes=list(scopes), **kwargs).secret

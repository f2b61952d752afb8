"""selectors.manifest_get reads one row with a plain cursor (docs/decisions/0047): the same Manifest the ORM builds."""

from __future__ import annotations

from django.test import Client

from gateway.registry import selectors
from gateway.registry.models import Manifest
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic


def test_manifest_get_by_tag_and_digest_equals_the_orms_row_field_by_field(reg, tenant):
    digest, _ = reg.push_image("app", "v1", [b"layer-one"])
    Manifest.objects.filter(tenant=tenant, digest=digest).update(annotations={"org.example": "é", "n": [1, None]})
    repository = selectors.repository_get(tenant=tenant, name="app")
    orm = Manifest.objects.get(tenant=tenant, digest=digest)
    for reference in ("v1", digest):
        got = selectors.manifest_get(tenant=tenant, repository=repository, reference=reference)
        assert got is not None and got._state.adding is False
        for field in Manifest._meta.concrete_fields:
            ours, theirs = getattr(got, field.attname), getattr(orm, field.attname)
            assert (ours, type(ours)) == (theirs, type(theirs)), field.attname
    assert got.annotations == {"org.example": "é", "n": [1, None]}


def test_manifest_get_finds_nothing_unknown_or_of_another_tenant(reg, tenant):
    digest, _ = reg.push_image("app", "v1", [b"layer-one"])
    repository = selectors.repository_get(tenant=tenant, name="app")
    for reference in ("v2", "sha256:" + "0" * 64):
        assert selectors.manifest_get(tenant=tenant, repository=repository, reference=reference) is None
    owner = UserFactory(username="bob")
    other = make_tenant("beta", owner=owner)
    Reg(Client(), basic("bob", make_token(owner)), prefix="/v2/beta").push_image("app", "v1", [b"beta-layer"])
    theirs = selectors.repository_get(tenant=other, name="app")
    assert selectors.manifest_get(tenant=tenant, repository=theirs, reference="v1") is None
    assert selectors.manifest_get(tenant=other, repository=repository, reference=digest) is None

import pytest

from accounts.models import Membership, Tenant
from accounts.services import tenant_create
from accounts.validators import validate_tenant_slug
from gateway.core.errors import Conflict, ValidationError
from tests.factories import UserFactory


@pytest.mark.parametrize("slug", ["acme", "a1", "my-team", "x" * 63, "0day"])
def test_valid_slugs(slug):
    assert validate_tenant_slug(slug) == slug


@pytest.mark.parametrize(
    "slug,reason",
    [
        ("", "required"),
        ("a", "2 to 63"),
        ("x" * 64, "2 to 63"),
        ("Acme", "DNS label"),
        ("-acme", "DNS label"),
        ("acme-", "DNS label"),
        ("ac_me", "DNS label"),
        ("ac.me", "DNS label"),
        ("xn--bcher", "IDN"),
        ("v2", "reserved"),
        ("admin", "reserved"),
        ("www", "reserved"),
        ("api", "reserved"),
    ],
)
def test_bad_and_reserved_slugs_are_refused_with_the_reason(slug, reason):
    with pytest.raises(ValidationError, match=reason):
        validate_tenant_slug(slug)


@pytest.mark.django_db
def test_tenant_create_makes_the_owner_a_member():
    owner = UserFactory()
    tenant = tenant_create(slug="acme", owner=owner)
    assert Membership.objects.get(tenant=tenant, user=owner).role == "owner"


@pytest.mark.django_db
def test_duplicate_and_invalid_slugs_leave_nothing_behind():
    owner = UserFactory()
    tenant_create(slug="acme", owner=owner)
    with pytest.raises(Conflict, match="already exists"):
        tenant_create(slug="acme", owner=owner)
    with pytest.raises(ValidationError):
        tenant_create(slug="Bad_Slug", owner=owner)
    assert Tenant.objects.count() == 1
    assert Membership.objects.count() == 1

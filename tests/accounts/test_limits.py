"""Plan limits on the tenant: written at once by `tenant_limits_set`, read back by `tenant_limits_get`."""

from __future__ import annotations

import pytest

from accounts.limits import LIMIT_FIELDS, TenantLimits, tenant_limits_get
from accounts.models import Tenant
from accounts.services import tenant_limits_set
from gateway.core.errors import ValidationError
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db


def test_a_new_tenant_is_unlimited():
    tenant = make_tenant("acme")
    assert tenant_limits_get(tenant=tenant) == TenantLimits()
    assert set(LIMIT_FIELDS) == set(TenantLimits().as_fields())


def test_limits_are_written_together_and_read_back():
    tenant = make_tenant("acme")
    limits = TenantLimits(
        storage_quota_bytes=10 * 2**30, private_repositories_limit=3, members_limit=5, robots_limit=2,
        pulls_per_window_authenticated=200, pulls_per_window_anonymous=100, egress_bytes_per_month_limit=50 * 2**30,
    )  # fmt: skip
    tenant_limits_set(tenant=tenant, limits=limits)
    assert tenant_limits_get(tenant=tenant) == limits
    tenant_limits_set(tenant=tenant, limits=TenantLimits(members_limit=1))
    assert tenant_limits_get(tenant=tenant) == TenantLimits(members_limit=1)  # the others back to unlimited


def test_negative_limits_are_refused_and_nothing_changes():
    tenant = make_tenant("acme")
    tenant_limits_set(tenant=tenant, limits=TenantLimits(robots_limit=4))
    before = Tenant.objects.get(pk=tenant.pk).updated_at
    with pytest.raises(ValidationError, match="members_limit, storage_quota_bytes"):
        tenant_limits_set(tenant=tenant, limits=TenantLimits(storage_quota_bytes=-1, members_limit=-2))
    assert tenant_limits_get(tenant=tenant) == TenantLimits(robots_limit=4)
    assert Tenant.objects.get(pk=tenant.pk).updated_at == before

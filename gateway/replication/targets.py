"""Replication targets and tenant opt-in: register a secondary S3 target, choose one per tenant.

A target is checked before it is saved (a valid name, an http(s) endpoint, a valid bucket that
answers, not the primary bucket itself: replica keys equal primary keys); its secret key is
stored encrypted. A tenant opts in to one enabled target, or out; the sweep backfills content
pushed before the opt-in.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import SYSTEM_ACTOR, audit_record
from gateway.core.crypto import secret_encrypt
from gateway.core.errors import Conflict, ValidationError
from gateway.replication.models import StorageTarget, TenantReplication
from gateway.replication.stores import primary_config, target_endpoint_check, target_store
from gateway.storage import StorageError

_BUCKET = re.compile(r"^(?=.{3,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _same_bucket(endpoint_a: str, bucket_a: str, endpoint_b: str, bucket_b: str) -> bool:
    a, b = urlsplit(endpoint_a.strip().lower()), urlsplit(endpoint_b.strip().lower())
    return (a.scheme, a.netloc, a.path.rstrip("/")) == (b.scheme, b.netloc, b.path.rstrip("/")) and bucket_a == bucket_b


def storage_target_create(
    *,
    name: str,
    endpoint_url: str,
    bucket: str,
    access_key: str,
    secret_key: str,
    region: str = "us-1",
    addressing_style: str = "path",
    create_bucket: bool = False,
    check: bool = True,
) -> StorageTarget:
    """Register a secondary S3 target (secret key encrypted at rest); with `check` its bucket must answer first."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise ValidationError(f"A target name is 1 to 63 lowercase letters, digits and dashes, got {name!r}.")
    parts = urlsplit((endpoint_url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"The endpoint must be an http(s) URL, got {endpoint_url!r}.")
    if not _BUCKET.match(bucket or ""):
        raise ValidationError(f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, dots and dashes).")
    if addressing_style not in StorageTarget.AddressingStyle.values:
        raise ValidationError(
            f"addressing_style must be one of {', '.join(StorageTarget.AddressingStyle.values)}, got {addressing_style!r}."
        )
    if not (access_key or "").strip() or not secret_key:
        raise ValidationError("An access key and a secret key are required.")
    if not (region or "").strip():
        raise ValidationError("A region is required (any value works on Storj, e.g. us-1).")
    primary = primary_config()
    if _same_bucket(endpoint_url, bucket, primary.endpoint_url, primary.bucket):
        raise ValidationError("The replica target must not be the primary bucket itself (replica keys equal primary keys).")
    target_endpoint_check(endpoint_url=endpoint_url.strip(), bucket=bucket, addressing_style=addressing_style)
    if StorageTarget.objects.filter(name=name).exists():
        raise Conflict(f"A storage target named {name!r} exists already.")
    target = StorageTarget(
        name=name,
        endpoint_url=endpoint_url.strip(),
        bucket=bucket,
        region=region.strip(),
        addressing_style=addressing_style,
        access_key=access_key.strip(),
        secret_key_encrypted=secret_encrypt(secret_key),
    )
    if create_bucket or check:
        store = target_store(target)
        try:
            if create_bucket:
                store.bucket_ensure()
            store.check()
        except StorageError as exc:
            raise ValidationError(f"Target bucket {bucket!r} at {endpoint_url} is not usable: {exc}") from None
    target.save()
    return target


def storage_target_get(*, name: str) -> StorageTarget | None:
    """The target with this name, or None."""
    return StorageTarget.objects.filter(name=name).first()


def tenant_replication_set(
    *, tenant: Tenant, target: StorageTarget | None, actor: str = SYSTEM_ACTOR
) -> TenantReplication | None:
    """Opt the tenant in to `target` (existing content is backfilled by the sweep) or out with None."""
    with transaction.atomic():
        if target is None:
            TenantReplication.objects.filter(tenant=tenant).update(enabled=False, updated_at=timezone.now())
            audit_record(action="replication.disable", actor=actor, tenant=tenant)
            return None
        if not target.enabled:
            raise ValidationError(f"Storage target {target.name!r} is disabled.")
        config, _ = TenantReplication.objects.update_or_create(tenant=tenant, defaults={"target": target, "enabled": True})
        audit_record(action="replication.enable", actor=actor, tenant=tenant, target=target.name)
    return config

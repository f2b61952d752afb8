"""Replication targets and tenant opt-in: register a secondary S3 target, choose one per tenant.

A target is checked before it is saved (a valid name, an http(s) endpoint through the outbound
address policy, a valid bucket that answers, not the primary bucket itself: replica keys equal
primary keys); its secret key is stored encrypted. A target is a platform one (`tenant` None,
managed by staff, open to every tenant) or a tenant's own (only that tenant sees or chooses it).
A tenant opts in to one enabled target, or out; the sweep backfills content pushed before the opt-in.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import SYSTEM_ACTOR, audit_record
from gateway.core.crypto import secret_encrypt
from gateway.core.errors import Conflict, NotFound, ValidationError
from gateway.replication.models import StorageTarget, TenantReplication
from gateway.replication.stores import primary_config, target_endpoint_check, target_store
from gateway.storage import StorageError

_BUCKET = re.compile(r"^(?=.{3,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _invalid(field: str, message: str) -> ValidationError:
    """A ValidationError whose problem body names the field (`errors: [{field, message}]`)."""
    return ValidationError(message, extra={"errors": {field: message}})


def _same_bucket(endpoint_a: str, bucket_a: str, endpoint_b: str, bucket_b: str) -> bool:
    a, b = urlsplit(endpoint_a.strip().lower()), urlsplit(endpoint_b.strip().lower())
    return (a.scheme, a.netloc, a.path.rstrip("/")) == (b.scheme, b.netloc, b.path.rstrip("/")) and bucket_a == bucket_b


def _fields_check(*, name: str, endpoint_url: str, bucket: str, addressing_style: str, access_key: str, secret_key: str) -> None:
    if not _NAME.match(name):
        raise _invalid("name", f"A target name is 1 to 63 lowercase letters, digits and dashes, got {name!r}.")
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid("endpoint_url", f"The endpoint must be an http(s) URL, got {endpoint_url!r}.")
    if not _BUCKET.match(bucket or ""):
        raise _invalid("bucket", f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, dots and dashes).")
    if addressing_style not in StorageTarget.AddressingStyle.values:
        raise _invalid(
            "addressing_style",
            f"addressing_style must be one of {', '.join(StorageTarget.AddressingStyle.values)}, got {addressing_style!r}.",
        )
    if not (access_key or "").strip() or not secret_key:
        raise _invalid("secret_key", "An access key and a secret key are required.")


def _store_check(target: StorageTarget, *, create_bucket: bool = False) -> None:
    """The target's bucket answers with its credentials (created first with `create_bucket`)."""
    store = target_store(target)
    try:
        if create_bucket:
            store.bucket_ensure()
        store.check()
    except StorageError as exc:
        raise _invalid("bucket", f"Target bucket {target.bucket!r} at {target.endpoint_url} is not usable: {exc}") from None


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
    tenant: Tenant | None = None,
    actor: str = SYSTEM_ACTOR,
) -> StorageTarget:
    """Register a secondary S3 target, a platform one or `tenant`'s own (secret key encrypted at rest); audited.

    With `check` its bucket must answer first. Names are unique per owner (409).
    """
    name, endpoint_url = (name or "").strip(), (endpoint_url or "").strip()
    _fields_check(
        name=name,
        endpoint_url=endpoint_url,
        bucket=bucket,
        addressing_style=addressing_style,
        access_key=access_key,
        secret_key=secret_key,
    )
    if not (region or "").strip():
        raise _invalid("region", "A region is required (any value works on Storj, e.g. us-1).")
    primary = primary_config()
    if _same_bucket(endpoint_url, bucket, primary.endpoint_url, primary.bucket):
        raise _invalid("bucket", "The replica target must not be the primary bucket itself (replica keys equal primary keys).")
    target_endpoint_check(endpoint_url=endpoint_url, bucket=bucket, addressing_style=addressing_style)
    if StorageTarget.objects.filter(tenant=tenant, name=name).exists():
        raise Conflict(f"A storage target named {name!r} exists already.")
    target = StorageTarget(
        tenant=tenant,
        name=name,
        endpoint_url=endpoint_url,
        bucket=bucket,
        region=region.strip(),
        addressing_style=addressing_style,
        access_key=access_key.strip(),
        secret_key_encrypted=secret_encrypt(secret_key),
    )
    if create_bucket or check:
        _store_check(target, create_bucket=create_bucket)
    with transaction.atomic():
        target.save()
        audit_record(action="replication.target.create", actor=actor, tenant=tenant, target=name, detail={"bucket": bucket})
    return target


def storage_target_update(
    *,
    target: StorageTarget,
    actor: str,
    enabled: bool | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> StorageTarget:
    """Enable or disable a target, or replace its region or credentials (checked against its bucket first); audited.

    Its endpoint and bucket stay: replica rows describe what that bucket holds (register a new target instead).
    """
    if (access_key is None) != (secret_key is None):
        raise _invalid("secret_key", "Replace the access key and the secret key together.")
    if region is not None and not region.strip():
        raise _invalid("region", "A region is required (any value works on Storj, e.g. us-1).")
    changed: list[str] = []
    if region is not None:
        target.region, changed = region.strip(), [*changed, "region"]
    if access_key is not None and secret_key is not None:
        if not access_key.strip() or not secret_key:
            raise _invalid("secret_key", "An access key and a secret key are required.")
        target.access_key, target.secret_key_encrypted = access_key.strip(), secret_encrypt(secret_key)
        changed += ["access_key", "secret_key_encrypted"]
    if changed:
        _store_check(target)
    if enabled is not None:
        target.enabled, changed = enabled, [*changed, "enabled"]
    with transaction.atomic():
        target.save(update_fields=[*changed, "updated_at"])
        detail = {"changed": sorted({"credentials" if f.startswith(("access", "secret")) else f for f in changed})}
        audit_record(action="replication.target.update", actor=actor, tenant=target.tenant, target=target.name, detail=detail)
    return target


def storage_target_delete(*, target: StorageTarget, actor: str) -> None:
    """Remove a target no tenant's settings name (409 otherwise); its replica rows go, the bucket's objects stay. Audited."""
    with transaction.atomic():
        if TenantReplication.objects.filter(target=target).exists():
            raise Conflict(f"Storage target {target.name!r} is chosen in replication settings; choose another first.")
        audit_record(action="replication.target.delete", actor=actor, tenant=target.tenant, target=target.name)
        target.delete()


def storage_target_get(*, name: str, tenant: Tenant | None = None) -> StorageTarget | None:
    """The platform target (tenant None) or `tenant`'s own target with this name, or None."""
    return StorageTarget.objects.filter(tenant=tenant, name=name).first()


def tenant_replication_set(
    *, tenant: Tenant, target: StorageTarget | None, actor: str = SYSTEM_ACTOR, enabled: bool = True
) -> TenantReplication | None:
    """Opt the tenant in to `target` (existing content is backfilled by the sweep), pause it (`enabled` False), or out with None.

    `target` is a platform target or the tenant's own; another tenant's is NotFound.
    """
    with transaction.atomic():
        if target is None:
            TenantReplication.objects.filter(tenant=tenant).update(enabled=False, updated_at=timezone.now())
            audit_record(action="replication.disable", actor=actor, tenant=tenant)
            return None
        if target.tenant_id not in (None, tenant.pk):
            raise NotFound(f"No storage target {target.name!r}.")
        if enabled and not target.enabled:
            raise _invalid("target", f"Storage target {target.name!r} is disabled.")
        config, _ = TenantReplication.objects.update_or_create(tenant=tenant, defaults={"target": target, "enabled": enabled})
        action = "replication.enable" if enabled else "replication.pause"
        audit_record(action=action, actor=actor, tenant=tenant, target=target.name)
    return config

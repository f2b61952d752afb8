"""The replica targets' BlobStores (a tenant's primary store is gateway.registry.stores.store_for)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from gateway.core.crypto import secret_decrypt
from gateway.core.errors import ValidationError
from gateway.core.netpolicy import outbound_url_check
from gateway.replication.models import StorageTarget
from gateway.storage import BlobStore, StorageError, get_blob_store
from gateway.storage.s3 import S3Config


def primary_config() -> S3Config:
    """The platform bucket's configuration (settings.GATEWAY_S3)."""
    return S3Config.from_settings(settings.GATEWAY_S3)


def target_config(target: StorageTarget) -> S3Config:
    """A replica target's configuration; part size, pool and the Storj guard follow the primary's."""
    primary = primary_config()
    return S3Config(
        endpoint_url=target.endpoint_url,
        access_key=target.access_key,
        secret_key=secret_decrypt(target.secret_key_encrypted),
        bucket=target.bucket,
        region=target.region,
        addressing_style=target.addressing_style,
        part_size=primary.part_size,
        max_pool=primary.max_pool,
        storj_guard=primary.storj_guard,
    )


class TargetRefused(StorageError):
    """The target's address is refused by the outbound address policy (recorded like any storage failure)."""


def target_endpoint_check(*, endpoint_url: str, bucket: str, addressing_style: str) -> None:
    """The outbound address policy for a target: its endpoint host (and `<bucket>.<host>` with virtual addressing)."""
    outbound_url_check(endpoint_url, what="Replication target endpoint")
    if addressing_style == StorageTarget.AddressingStyle.VIRTUAL:
        parts = urlsplit(endpoint_url)
        outbound_url_check(urlunsplit(parts._replace(netloc=f"{bucket}.{parts.netloc}")), what="Replication target bucket")


def target_store(target: StorageTarget) -> BlobStore:
    """The store of a replica target (cached per configuration, like the primary's); its address is checked on every use."""
    try:
        target_endpoint_check(endpoint_url=target.endpoint_url, bucket=target.bucket, addressing_style=target.addressing_style)
    except ValidationError as exc:
        raise TargetRefused(exc.message) from None
    return get_blob_store(target_config(target))

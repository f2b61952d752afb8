"""The BlobStores audits and replication talk to: the primary bucket and a tenant's replica target."""

from __future__ import annotations

from django.conf import settings

from gateway.core.crypto import secret_decrypt
from gateway.replication.models import StorageTarget
from gateway.storage import BlobStore, get_blob_store
from gateway.storage.s3 import S3Config


def primary_config() -> S3Config:
    """The platform bucket's configuration (settings.GATEWAY_S3)."""
    return S3Config.from_settings(settings.GATEWAY_S3)


def primary_store() -> BlobStore:
    """Where the registry writes blobs and manifests."""
    return get_blob_store()


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


def target_store(target: StorageTarget) -> BlobStore:
    """The store of a replica target (cached per configuration, like the primary's)."""
    return get_blob_store(target_config(target))

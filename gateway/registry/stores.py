"""Which blob store holds a tenant's objects: the one seam bring-your-own-bucket plugs into (decisions/0015)."""

from __future__ import annotations

from accounts.models import Tenant
from gateway.storage import BlobStore, get_blob_store


def store_for(tenant: Tenant | int) -> BlobStore:
    """The storage target of a tenant (or tenant id); the platform bucket until tenants can bring their own."""
    return get_blob_store()

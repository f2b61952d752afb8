"""OCI distribution error codes, one class each, rendered as {"errors": [...]} by RegistryView.

A code answered with another status than its usual one (416 for a bad range, 413 for a manifest too
large) is a subclass of its code's class that sets only `status` and `message`.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    code = "UNKNOWN"
    status = 500
    message = "unknown error"

    def __init__(self, message: str | None = None, *, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.detail = detail
        self.headers = headers or {}


class BlobUnknown(RegistryError):
    code, status, message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class RangeInvalid(BlobUploadInvalid):
    status, message = 416, "requested range not satisfiable"


class RequestTimeout(BlobUploadInvalid):
    status, message = 408, "the request body arrived too slowly"


class BlobUploadUnknown(RegistryError):
    code, status, message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, status, message = "DIGEST_INVALID", 400, "provided digest did not match uploaded content"


# A push naming what the repository lacks is a bad request (400), as in Distribution; a GET of a manifest that is not there is a 404.
class ManifestBlobUnknown(RegistryError):
    code, status, message = "MANIFEST_BLOB_UNKNOWN", 400, "manifest references a blob unknown to registry"


class ManifestInvalid(RegistryError):
    code, status, message = "MANIFEST_INVALID", 400, "manifest invalid"


class PayloadTooLarge(ManifestInvalid):
    status, message = 413, "manifest too large"


class ManifestUnknown(RegistryError):
    code, status, message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class ManifestChildUnknown(ManifestUnknown):
    status, message = 400, "index references a manifest unknown to registry"


class TagInvalid(RegistryError):
    """Distribution's code (not in the OCI list; clients treat it as any 400)."""

    code, status, message = "TAG_INVALID", 400, "invalid tag"


class NameInvalid(RegistryError):
    code, status, message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, message = "SIZE_INVALID", 400, "provided length did not match content length"


class Unauthorized(RegistryError):
    code, status, message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, status, message = "UNSUPPORTED", 415, "the operation is unsupported"


class MethodNotAllowed(Unsupported):
    status, message = 405, "method not allowed"


class TooManyRequests(RegistryError):
    code, status, message = "TOOMANYREQUESTS", 429, "too many requests"


class PaginationInvalid(RegistryError):
    code, status, message = "PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested"


class StorageUnavailableError(RegistryError):
    code, status, message = "UNAVAILABLE", 503, "storage temporarily unavailable, retry later"

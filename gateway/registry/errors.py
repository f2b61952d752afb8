"""OCI distribution error codes, one class each, rendered as {"errors": [...]} by RegistryView."""

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

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def _error(code: str, status: int, message: str) -> type[RegistryError]:
    return type(code.title().replace("_", "") + "Error", (RegistryError,), {"code": code, "status": status, "message": message})


BlobUnknown = _error("BLOB_UNKNOWN", 404, "blob unknown to registry")
BlobUploadInvalid = _error("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
BlobUploadUnknown = _error("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
DigestInvalid = _error("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
# A push naming what the repository lacks is a bad request (400), as in Distribution; a GET of a manifest that is not there is a 404.
ManifestBlobUnknown = _error("MANIFEST_BLOB_UNKNOWN", 400, "manifest references a blob unknown to registry")
ManifestInvalid = _error("MANIFEST_INVALID", 400, "manifest invalid")
ManifestUnknown = _error("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
ManifestChildUnknown = _error("MANIFEST_UNKNOWN", 400, "index references a manifest unknown to registry")
TagInvalid = _error("TAG_INVALID", 400, "invalid tag")  # Distribution's code (not in the OCI list; clients treat it as any 400)
NameInvalid = _error("NAME_INVALID", 400, "invalid repository name")
NameUnknown = _error("NAME_UNKNOWN", 404, "repository name not known to registry")
SizeInvalid = _error("SIZE_INVALID", 400, "provided length did not match content length")
Unauthorized = _error("UNAUTHORIZED", 401, "authentication required")
Denied = _error("DENIED", 403, "requested access to the resource is denied")
Unsupported = _error("UNSUPPORTED", 415, "the operation is unsupported")
TooManyRequests = _error("TOOMANYREQUESTS", 429, "too many requests")
RangeInvalid = _error("BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable")
RequestTimeout = _error("BLOB_UPLOAD_INVALID", 408, "the request body arrived too slowly")
PayloadTooLarge = _error("MANIFEST_INVALID", 413, "manifest too large")
PaginationInvalid = _error("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested")
StorageUnavailableError = _error("UNAVAILABLE", 503, "storage temporarily unavailable, retry later")
MethodNotAllowed = _error("UNSUPPORTED", 405, "method not allowed")

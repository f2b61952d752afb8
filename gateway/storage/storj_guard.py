"""Fail loudly on any S3 request that Storj's gateway would refuse (docs/storj.md §13).

SeaweedFS accepts all of these, so without the guard a test passes here and the same code
fails against Storj. Tests (and `GATEWAY_S3_STORJ_GUARD=true` in development) install it
on every client; a violation raises StorjIncompatible before the request is sent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit


class StorjIncompatible(AssertionError):
    pass


def check_request(operation: str, method: str, url: str, headers: dict[str, str]) -> None:
    """Raise StorjIncompatible when this request would fail on Storj's S3 gateway."""
    lower = {
        (k.decode() if isinstance(k, bytes) else k).lower(): (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in headers.items()
    }
    for name, value in lower.items():
        if name.startswith("x-amz-checksum-") or name in ("x-amz-sdk-checksum-algorithm", "x-amz-trailer"):
            raise StorjIncompatible(f"{operation}: header {name} is not supported by Storj")
        if name == "x-amz-content-sha256" and "TRAILER" in value:
            raise StorjIncompatible(f"{operation}: aws-chunked trailers ({value}) are not supported by Storj")
    if lower.get("content-encoding", "").find("aws-chunked") >= 0:
        raise StorjIncompatible(f"{operation}: aws-chunked encoding is not supported by Storj")
    if operation == "DeleteObjects" and "content-md5" not in lower:
        raise StorjIncompatible("DeleteObjects without Content-MD5 is refused by Storj (MissingContentMD5)")
    if operation == "UploadPartCopy" or "x-amz-copy-source-range" in lower:
        raise StorjIncompatible("UploadPartCopy is not enabled on Storj's gateway")
    if operation == "UploadPart" and "x-amz-copy-source" in lower:
        raise StorjIncompatible("UploadPartCopy is not enabled on Storj's gateway")
    if "if-match" in lower and method in ("PUT", "POST"):
        raise StorjIncompatible(f"{operation}: conditional writes with If-Match are not supported by Storj")
    if "if-none-match" in lower and method in ("PUT", "POST") and lower["if-none-match"].strip() != "*":
        raise StorjIncompatible(f"{operation}: only If-None-Match: * is supported on writes by Storj")
    if operation in ("ListObjects", "ListObjectsV2", "ListMultipartUploads"):
        query = parse_qs(urlsplit(url).query)
        prefix = query.get("prefix", [""])[0]
        delimiter = query.get("delimiter", [""])[0]
        if prefix and not prefix.endswith("/"):
            raise StorjIncompatible(f"{operation}: prefix {prefix!r} does not end in '/' (Storj: 501 or no results)")
        if delimiter and delimiter != "/":
            raise StorjIncompatible(f"{operation}: delimiter {delimiter!r} is not '/'")


def install(client: Any) -> None:
    """Register the guard on a boto3 S3 client (runs after signing, on the real headers)."""

    def before_send(request: Any, **kwargs: Any) -> None:
        operation = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1]
        check_request(operation, request.method, request.url, dict(request.headers))

    client.meta.events.register("before-send.s3", before_send)

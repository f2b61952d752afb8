"""Small HTTP helpers shared by the registry views: bodies, ranges, pagination."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.http import HttpRequest

from gateway.core.transport import BodyInvalid, BodyTimeout
from gateway.registry.errors import BlobUploadInvalid, PaginationInvalid, RangeInvalid, RequestTimeout, SizeInvalid
from gateway.registry.services.uploads import Body
from gateway.registry.streaming import Reader

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_PAGE = 1000


class _Input:
    """The WSGI input, with the web worker's body errors (gateway.core.transport) as OCI errors."""

    def __init__(self, stream: Reader) -> None:
        self._stream = stream

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._stream.read(size)
        except BodyTimeout as exc:
            raise RequestTimeout(str(exc)) from None
        except BodyInvalid as exc:
            raise BlobUploadInvalid(str(exc)) from None


def request_body(request: HttpRequest) -> Body:
    """The request body as a stream. Chunked bodies (no Content-Length) are read from the
    WSGI input directly: Django reads them as empty, gunicorn de-chunks them. A body that is
    too slow answers 408, a malformed or cut chunked one BLOB_UPLOAD_INVALID (400)."""
    stream = _Input(request.META["wsgi.input"])
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if raw_length.strip():
        try:
            length = int(raw_length)
        except ValueError:
            raise SizeInvalid(f"invalid Content-Length {raw_length[:30]!r}") from None
        if length < 0:
            raise SizeInvalid("negative Content-Length")
        return Body(stream, length)
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return Body(stream, None)
    return Body(stream, 0)


def read_at_most(body: Body, limit: int) -> bytes:
    """A small body whole (manifests): at most `limit` bytes; SIZE_INVALID when it ends early."""
    want = limit if body.length is None else min(body.length, limit)
    parts: list[bytes] = []
    got = 0
    while got < want:
        chunk = body.reader.read(min(want - got, 1024 * 1024))
        if not chunk:
            if body.length is not None:
                raise SizeInvalid(f"expected {body.length} bytes, got {got}")
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def content_range_start(request: HttpRequest, body: Body) -> int | None:
    """The start offset a PATCH's Content-Range names (None without one); 416 when malformed."""
    value = request.META.get("HTTP_CONTENT_RANGE", "").strip()
    if not value:
        return None
    m = _CONTENT_RANGE.match(value)
    if not m:
        raise RangeInvalid(f"invalid Content-Range {value[:60]!r}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RangeInvalid(f"invalid Content-Range {value[:60]!r}")
    if body.length is not None and body.length != end - start + 1:
        raise RangeInvalid(f"Content-Range covers {end - start + 1} bytes, Content-Length is {body.length}")
    return start


def byte_range(request: HttpRequest, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive from a `Range: bytes=a-b` header; None for the whole; 416 if unsatisfiable."""
    value = request.META.get("HTTP_RANGE", "").strip()
    if not value:
        return None
    m = _RANGE.match(value)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed or multi-range: serve the whole (RFC 9110 allows ignoring Range)
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
    else:
        suffix = int(m.group(2))
        start, end = max(size - suffix, 0), size - 1
    end = min(end, size - 1)
    if start >= size or start > end:
        raise RangeInvalid("requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end


def page_params(request: HttpRequest) -> tuple[int | None, str | None]:
    raw_n = request.GET.get("n")
    n: int | None = None
    if raw_n is not None:
        try:
            n = int(raw_n)
        except ValueError:
            raise PaginationInvalid(f"n must be an integer, got {raw_n[:20]!r}") from None
        if n < 0:
            raise PaginationInvalid("n must not be negative")
        n = min(n, MAX_PAGE)
    return n, request.GET.get("last") or None


def next_link(path: str, n: int, last: str, **extra: str) -> str:
    return f'<{path}?{urlencode({**extra, "n": n, "last": last})}>; rel="next"'

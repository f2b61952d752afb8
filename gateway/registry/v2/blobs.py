"""GET/HEAD/DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from gateway.registry import selectors
from gateway.registry.digests import parse_digest
from gateway.registry.errors import BlobUnknown
from gateway.registry.models import Blob
from gateway.registry.services import events
from gateway.registry.services.uploads import blob_unlink
from gateway.registry.stores import store_for
from gateway.registry.v2.base import RegistryView, Target
from gateway.registry.v2.http import byte_range

STREAM_RELEASE_DB_BYTES = 8 * 1024 * 1024


class SentBytes:
    """A streamed body that reports, once, on close, the bytes the server actually wrote (a proxied pull's egress).

    A chunk counts once the server asks for the next one (so its write returned) or the stream
    ends: a client that disconnects mid-transfer is charged for what left, not for the whole range.
    The WSGI server calls close() on every response, finished or aborted (PEP 3333).
    """

    def __init__(self, chunks: Iterable[bytes], report: Callable[[int], None]) -> None:
        self._chunks, self._report = chunks, report
        self.sent, self._pending, self._reported = 0, 0, False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.sent += self._pending
            self._pending = len(chunk)
            yield chunk
        self.sent += self._pending
        self._pending = 0

    def close(self) -> None:
        if self._reported:
            return
        self._reported = True
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._report(self.sent)


def _blob(target: Target, digest: str) -> Blob:
    parse_digest(digest)
    blob = selectors.blob_get_linked(tenant=target.tenant, repository=target.repository(), digest=digest)
    if blob is None:
        raise BlobUnknown(detail={"digest": digest})
    return blob


def _record_pull(target: Target, digest: str, sent: int) -> None:
    events.record(tenant=target.tenant, repository=target.name, digest=digest, size=sent, kind="blob", direction="pull")


class BlobView(RegistryView):
    scope_map = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}

    def head(self, request: HttpRequest, target: Target, digest: str) -> HttpResponse:
        blob = _blob(target, digest)
        response = HttpResponse(content_type="application/octet-stream")
        response["Content-Length"] = str(blob.size)
        response["Docker-Content-Digest"] = blob.digest
        response["Accept-Ranges"] = "bytes"
        response["ETag"] = f'"{blob.digest}"'
        return response

    def get(self, request: HttpRequest, target: Target, digest: str) -> HttpResponseBase:
        blob = _blob(target, digest)
        store = store_for(target.tenant)
        rng = byte_range(request, blob.size)
        if target.tenant.redirect_blob_downloads:
            events.record(
                tenant=target.tenant,
                repository=target.name,
                digest=blob.digest,
                size=blob.size,
                kind="blob",
                direction="pull",
                mode="redirect",
            )
            redirect = HttpResponse(status=307)
            redirect["Location"] = store.presign_get(blob.storage_key, expires=settings.GATEWAY_PRESIGN_SECONDS)
            redirect["Docker-Content-Digest"] = blob.digest
            return redirect
        start, end = rng if rng else (0, blob.size - 1)
        length = max(end - start + 1, 0)
        chunks = SentBytes(
            store.open_read(blob.storage_key, start=start, end=end) if length else iter(()),
            partial(_record_pull, target, blob.digest),
        )
        if length >= STREAM_RELEASE_DB_BYTES:
            connection.close()  # do not hold a database connection for the whole transfer
        response = StreamingHttpResponse(chunks, status=206 if rng else 200, content_type="application/octet-stream")
        response["Content-Length"] = str(length)
        response["Docker-Content-Digest"] = blob.digest
        response["Accept-Ranges"] = "bytes"
        response["ETag"] = f'"{blob.digest}"'
        if rng:
            response["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        return response

    def delete(self, request: HttpRequest, target: Target, digest: str) -> HttpResponse:
        parse_digest(digest)
        blob_unlink(
            tenant=target.tenant,
            repository=target.repository(),
            digest=digest,
            actor=target.identity.actor,
            ip=request.META.get("REMOTE_ADDR"),
        )
        return HttpResponse(status=202)

"""Blob uploads: POST /v2/<name>/blobs/uploads/ and /v2/<name>/blobs/uploads/<uuid>."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse

from gateway.registry import selectors
from gateway.registry.digests import ALGORITHMS, parse_algorithm, parse_digest
from gateway.registry.errors import BlobUploadUnknown, DigestInvalid
from gateway.registry.models import Blob, BlobUpload
from gateway.registry.services import uploads as svc
from gateway.registry.services.repositories import repository_ensure
from gateway.registry.v2.base import RegistryView, Target, mount_source_scope
from gateway.registry.v2.http import content_range_start, request_body
from gateway.storage.base import MIN_PART_SIZE


def _upload_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BlobUploadUnknown(detail={"uuid": raw[:100]}) from None


def _accepted(target: Target, upload: BlobUpload, status: int = 202) -> HttpResponse:
    response = HttpResponse(status=status)
    response["Location"] = target.url(f"blobs/uploads/{upload.pk}")
    response["Docker-Upload-UUID"] = str(upload.pk)
    response["Range"] = upload.range
    response["OCI-Chunk-Min-Length"] = str(MIN_PART_SIZE)
    response["Content-Length"] = "0"
    return response


def _created(target: Target, blob: Blob) -> HttpResponse:
    response = HttpResponse(status=201)
    response["Location"] = target.url(f"blobs/{blob.digest}")
    response["Docker-Content-Digest"] = blob.digest
    response["Content-Length"] = "0"
    return response


class UploadStartView(RegistryView):
    scope_map = {"POST": "push"}

    def extra_scopes(self, request: HttpRequest) -> list[str]:
        """A mount also needs pull on `from`: ask for it in the challenge so one token covers both."""
        return mount_source_scope(request)

    def post(self, request: HttpRequest, target: Target) -> HttpResponse:
        repository = repository_ensure(tenant=target.tenant, name=target.name)
        mount, source_name = request.GET.get("mount"), request.GET.get("from")
        if mount and source_name:
            blob = self._mount(request, target, repository, mount, source_name)
            if blob is not None:
                return _created(target, blob)
        digest = request.GET.get("digest")
        if digest:
            parse_digest(digest)
            blob = svc.blob_upload_monolithic(
                tenant=target.tenant, repository=repository, digest=digest, body=request_body(request)
            )
            return _created(target, blob)
        # OCI distribution-spec's optional hint: hash only that algorithm; without it, every one we support.
        hint = request.GET.get("digest-algorithm")
        algorithms = (parse_algorithm(hint),) if hint else ALGORITHMS
        upload = svc.blob_upload_start(tenant=target.tenant, repository=repository, algorithms=algorithms)
        return _accepted(target, upload)

    def _mount(self, request, target: Target, repository, digest: str, source_name: str) -> Blob | None:
        """Mount only from a repository of the same tenant that the caller may pull; else None."""
        try:
            parse_digest(digest)
            source = self.resolve(request, target.identity, source_name)
        except Exception:
            return None
        if source.tenant.pk != target.tenant.pk or "pull" not in source.actions:
            return None
        source_repo = selectors.repository_get(tenant=target.tenant, name=source.name)
        if source_repo is None:
            return None
        return svc.blob_mount(tenant=target.tenant, repository=repository, source=source_repo, digest=digest)


class UploadView(RegistryView):
    scope_map = {"GET": "push", "PATCH": "push", "PUT": "push", "DELETE": "push"}

    def get(self, request: HttpRequest, target: Target, upload_id: str) -> HttpResponse:
        upload = selectors.upload_get(tenant=target.tenant, repository=target.repository(), upload_id=_upload_id(upload_id))
        if upload is None:
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        return _accepted(target, upload, status=204)

    def patch(self, request: HttpRequest, target: Target, upload_id: str) -> HttpResponse:
        body = request_body(request)
        start = content_range_start(request, body)
        upload = svc.blob_upload_append(
            tenant=target.tenant, repository=target.repository(), upload_id=_upload_id(upload_id), body=body, range_start=start
        )
        return _accepted(target, upload)

    def put(self, request: HttpRequest, target: Target, upload_id: str) -> HttpResponse:
        digest = request.GET.get("digest")
        if not digest:
            raise DigestInvalid("the digest query parameter is required to finish an upload")
        parse_digest(digest)
        body = request_body(request)
        blob = svc.blob_upload_finish(
            tenant=target.tenant,
            repository=target.repository(),
            upload_id=_upload_id(upload_id),
            digest=digest,
            body=body if body.length != 0 else None,
        )
        return _created(target, blob)

    def delete(self, request: HttpRequest, target: Target, upload_id: str) -> HttpResponse:
        svc.blob_upload_cancel(tenant=target.tenant, repository=target.repository(), upload_id=_upload_id(upload_id))
        return HttpResponse(status=204)

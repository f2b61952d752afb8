"""GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from gateway.core.addresses import client_ip
from gateway.registry import selectors
from gateway.registry.errors import ManifestInvalid, ManifestUnknown
from gateway.registry.media_types import INDEX_TYPES, MAX_MANIFEST_BYTES, accepts, manifest_size_check
from gateway.registry.models import Manifest, Repository
from gateway.registry.pull_limits import PullCaller, PullQuota, pull_quota_headers_set, pull_quota_take
from gateway.registry.services import events
from gateway.registry.services.manifests import manifest_delete, manifest_put, manifest_reference_check
from gateway.registry.services.repositories import repository_ensure
from gateway.registry.v2.base import RegistryView, Target
from gateway.registry.v2.http import read_at_most, request_body


def _existing_reference(reference: str) -> None:
    """What GET, HEAD and DELETE may name: an invalid tag names no manifest, so MANIFEST_UNKNOWN (404), as in Distribution."""
    try:
        manifest_reference_check(reference=reference)
    except ManifestInvalid:
        raise ManifestUnknown(
            f"no manifest is tagged {reference[:100]!r}: not a valid tag", detail={"reference": reference[:200]}
        ) from None


class ManifestView(RegistryView):
    scope_map = {"GET": "pull", "HEAD": "pull", "PUT": "push", "DELETE": "delete"}

    def _find(self, request: HttpRequest, target: Target, reference: str) -> Manifest:
        _existing_reference(reference)
        manifest = selectors.manifest_get(tenant=target.tenant, repository=target.repository(), reference=reference)
        if manifest is None:
            raise ManifestUnknown(detail={"reference": reference})
        if not accepts(request.META.get("HTTP_ACCEPT", ""), manifest.media_type):
            raise ManifestUnknown(
                f"manifest is {manifest.media_type}, which the Accept header does not admit", detail={"reference": reference}
            )
        return manifest

    def _response(self, manifest: Manifest, body: bytes) -> HttpResponse:
        response = HttpResponse(body, content_type=manifest.media_type)
        response["Content-Length"] = str(manifest.size)
        response["Docker-Content-Digest"] = manifest.digest
        response["ETag"] = f'"{manifest.digest}"'
        return response

    def _pull_quota(self, request: HttpRequest, target: Target, manifest: Manifest, event: str = "") -> PullQuota | None:
        """The caller's pull budget; a GET of an image manifest spends one (429 when none is left), others only read it.

        A GET's `event` is queued with the count in one Redis round trip (or alone when no limit applies).
        """
        identity = target.identity
        caller = PullCaller(
            ip=client_ip(request),
            principal=identity.principal,
            subject=identity.subject,
            robot=identity.robot,
            private=target.repository().visibility != Repository.Visibility.PUBLIC,
        )
        counted = request.method == "GET" and manifest.media_type not in INDEX_TYPES
        return pull_quota_take(tenant=target.tenant, caller=caller, counted=counted, event=event)

    def head(self, request: HttpRequest, target: Target, reference: str) -> HttpResponse:
        manifest = self._find(request, target, reference)
        quota = self._pull_quota(request, target, manifest)
        return pull_quota_headers_set(self._response(manifest, b""), quota)

    def get(self, request: HttpRequest, target: Target, reference: str) -> HttpResponse:
        manifest = self._find(request, target, reference)
        event = events.event_line(
            tenant=target.tenant,
            repository=target.name,
            digest=manifest.digest,
            size=manifest.size,
            kind="manifest",
            direction="pull",
            reference=reference,
            media_type=manifest.media_type,
        )
        quota = self._pull_quota(request, target, manifest, event)  # a refused pull (429) queues no event
        return pull_quota_headers_set(self._response(manifest, bytes(manifest.payload)), quota)

    def put(self, request: HttpRequest, target: Target, reference: str) -> HttpResponse:
        manifest_reference_check(reference=reference)  # before reading the body or creating the repository
        body = request_body(request)
        if body.length is not None:
            manifest_size_check(body.length)  # a declared size: refused before reading
        payload = read_at_most(body, MAX_MANIFEST_BYTES + 1)  # manifest_put refuses what is over
        repository = repository_ensure(tenant=target.tenant, name=target.name)
        manifest = manifest_put(
            tenant=target.tenant,
            repository=repository,
            reference=reference,
            payload=payload,
            content_type=request.META.get("CONTENT_TYPE", ""),
            actor=target.identity.actor,
            ip=request.META.get("REMOTE_ADDR"),
        )
        response = HttpResponse(status=201)
        response["Location"] = target.url(f"manifests/{manifest.digest}")
        response["Docker-Content-Digest"] = manifest.digest
        response["Content-Length"] = "0"
        if manifest.subject_digest:
            response["OCI-Subject"] = manifest.subject_digest
        return response

    def delete(self, request: HttpRequest, target: Target, reference: str) -> HttpResponse:
        _existing_reference(reference)
        manifest_delete(
            tenant=target.tenant,
            repository=target.repository(),
            reference=reference,
            actor=target.identity.actor,
            ip=request.META.get("REMOTE_ADDR"),
        )
        return HttpResponse(status=202)

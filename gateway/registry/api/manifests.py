"""GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from gateway.registry import selectors
from gateway.registry.api.base import RegistryView, Target
from gateway.registry.api.http import read_at_most, request_body
from gateway.registry.digests import is_digest, parse_digest
from gateway.registry.errors import ManifestInvalid, ManifestUnknown, PayloadTooLarge
from gateway.registry.media_types import MAX_MANIFEST_BYTES, accepts
from gateway.registry.models import Manifest
from gateway.registry.names import validate_tag
from gateway.registry.services import events
from gateway.registry.services.manifests import manifest_delete, manifest_put
from gateway.registry.services.uploads import repository_ensure


def _reference(reference: str) -> str:
    """A valid digest (else DIGEST_INVALID) or tag (else MANIFEST_INVALID): what a PUT may name."""
    return parse_digest(reference) if is_digest(reference) else validate_tag(reference)


def _existing_reference(reference: str) -> str:
    """What GET, HEAD and DELETE may name: an invalid tag names no manifest, so MANIFEST_UNKNOWN (404), as in Distribution."""
    if is_digest(reference):
        return parse_digest(reference)
    try:
        return validate_tag(reference)
    except ManifestInvalid:
        raise ManifestUnknown(f"no manifest is tagged {reference[:100]!r}: not a valid tag", detail={"reference": reference[:200]}) from None


class ManifestView(RegistryView):
    scope_map = {"GET": "pull", "HEAD": "pull", "PUT": "push", "DELETE": "delete"}

    def _find(self, request: HttpRequest, target: Target, reference: str) -> Manifest:
        _existing_reference(reference)
        manifest = selectors.manifest_get(tenant=target.tenant, repository=target.repository(), reference=reference)
        if manifest is None:
            raise ManifestUnknown(detail={"reference": reference})
        if not accepts(request.META.get("HTTP_ACCEPT", ""), manifest.media_type):
            raise ManifestUnknown(f"manifest is {manifest.media_type}, which the Accept header does not admit", detail={"reference": reference})
        return manifest

    def _response(self, manifest: Manifest, body: bytes) -> HttpResponse:
        response = HttpResponse(body, content_type=manifest.media_type)
        response["Content-Length"] = str(manifest.size)
        response["Docker-Content-Digest"] = manifest.digest
        response["ETag"] = f'"{manifest.digest}"'
        return response

    def head(self, request: HttpRequest, target: Target, reference: str) -> HttpResponse:
        return self._response(self._find(request, target, reference), b"")

    def get(self, request: HttpRequest, target: Target, reference: str) -> HttpResponse:
        manifest = self._find(request, target, reference)
        events.record(tenant=target.tenant, repository=target.name, digest=manifest.digest, size=manifest.size, kind="manifest", direction="pull", reference=reference)
        return self._response(manifest, bytes(manifest.payload))

    def put(self, request: HttpRequest, target: Target, reference: str) -> HttpResponse:
        _reference(reference)
        body = request_body(request)
        if body.length is not None and body.length > MAX_MANIFEST_BYTES:
            raise PayloadTooLarge(f"manifest is {body.length} bytes; the limit is {MAX_MANIFEST_BYTES}")
        payload = read_at_most(body, MAX_MANIFEST_BYTES + 1)
        if len(payload) > MAX_MANIFEST_BYTES:
            raise PayloadTooLarge(f"manifest is over the {MAX_MANIFEST_BYTES}-byte limit")
        if not payload:
            raise ManifestInvalid("empty manifest")
        repository = repository_ensure(tenant=target.tenant, name=target.name)
        manifest = manifest_put(
            tenant=target.tenant, repository=repository, reference=reference, payload=payload,
            content_type=request.META.get("CONTENT_TYPE", ""), actor=target.identity.actor, ip=request.META.get("REMOTE_ADDR"),
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
            tenant=target.tenant, repository=target.repository(), reference=reference, actor=target.identity.actor, ip=request.META.get("REMOTE_ADDR")
        )
        return HttpResponse(status=202)

"""`Idempotency-Key` on every POST of the admin API (docs/decisions/0021; draft-ietf-httpapi-idempotency-key-header).

A client that may retry a POST (a timeout, a dropped connection) sends a key of its choosing.
The first request with it claims the key in Redis (`SET NX`, expiring after
GATEWAY_API_IDEMPOTENCY_LOCK_SECONDS in case the process dies) and, once answered, stores the
response for GATEWAY_API_IDEMPOTENCY_TTL_SECONDS (24 h): a retry with the same key, caller,
path and body gets that response again (with `Idempotent-Replayed: true`) and changes nothing.

- The same key with another path or body: 422. A retry while the first is still running: 409.
- Keys are per caller (user or robot), so two callers' keys never meet.
- Stored: 2xx and the 4xx that say something final about the request. Not stored (the key is
  released, a retry runs again): 5xx and the 4xx that may pass (408, 409, 412, 423, 425, 428, 429).
- Only the headers that belong to the result (Location, ETag, Link, Content-Type) are replayed;
  a replayed problem's `request_id` is the retry's own (the one in its X-Request-ID).
- Key: 1 to 255 printable ASCII characters, else 400. Redis unreachable: 503 (the client asked
  for at-most-once, which cannot be promised without it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass

import redis
from django.conf import settings
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.principals import Principal
from gateway.api.redis_store import api_redis
from gateway.core.errors import Conflict, ServiceUnavailable, Unprocessable

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
KEY_PREFIX = "wharf:api:idem:"
_VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
REPLAYED_HEADERS = ("Content-Type", "Location", "ETag", "Link")
TRANSIENT_STATUSES = frozenset({408, 409, 412, 423, 425, 428, 429})
IN_FLIGHT = "in-flight"
# Finish a claim: store the record (ARGV[2]; '' = release) only if the key still holds this request's
# claim, or nothing (the claim expired and nobody took it since); never over another request's claim.
_FINISH = """
local current = redis.call('get', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('del', KEYS[1]) return 1 end
redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

IDEMPOTENCY_KEY = OpenApiParameter(
    name=HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string of up to 255 printable characters. A retry with the same key and body gets the first "
        "response again (for 24 h) instead of doing the operation twice; 422 if the body differs, 409 while the "
        "first request is still running."
    ),
)


@dataclass(frozen=True)
class Claim:
    """A key this request holds: it stores its response under `redis_key` when done."""

    redis_key: str
    fingerprint: str
    claim: str  # the value this request set: what it finishes, and only that


def _fingerprint(request: Request) -> str:
    body = request.body
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    method = (request.method or "").encode()
    return hashlib.sha256(method + b" " + request.get_full_path().encode() + b"\n" + canonical).hexdigest()


def key_owner(request: Request) -> str | None:
    """Whose keys these are: `robot:<pk>` or `user:<pk>` (all of a user's tokens and sessions share them)."""
    principal = request.auth if isinstance(request.auth, Principal) else None
    if principal is not None and principal.robot is not None:
        return f"robot:{principal.robot.pk}"
    pk = getattr(request.user, "pk", None)
    return f"user:{pk}" if pk is not None and request.user.is_authenticated else None


def idempotency_claim(request: Request) -> Claim | Response | None:
    """For a POST with the header: claim its key (a Claim) or the stored response to replay; None without the header."""
    key = request.headers.get(HEADER)
    owner = key_owner(request)
    if request.method != "POST" or key is None or owner is None:
        return None
    if not _VALID_KEY.match(key):
        raise exceptions.ValidationError({HEADER: ["Use 1 to 255 printable ASCII characters."]})
    redis_key = KEY_PREFIX + owner + ":" + hashlib.sha256(key.encode()).hexdigest()
    fingerprint = _fingerprint(request)
    claim = json.dumps({"state": IN_FLIGHT, "fingerprint": fingerprint, "nonce": uuid.uuid4().hex})
    try:
        client = api_redis()
        for _ in range(2):  # a record that expires between SET NX and GET: claim again
            if client.set(redis_key, claim, nx=True, ex=int(settings.GATEWAY_API_IDEMPOTENCY_LOCK_SECONDS)):
                return Claim(redis_key=redis_key, fingerprint=fingerprint, claim=claim)
            stored = client.get(redis_key)
            if stored is not None:
                return _replay(json.loads(stored), fingerprint, request)  # type: ignore[arg-type]  # a sync client's bytes
    except redis.RedisError:
        raise ServiceUnavailable("Idempotency keys cannot be checked right now; retry shortly.") from None
    raise Conflict("A request with this Idempotency-Key is still in progress; retry when it has finished.")


def _replay(record: dict, fingerprint: str, request: Request) -> Response:
    if record["fingerprint"] != fingerprint:
        raise Unprocessable(f"This {HEADER} was used for another request (another path or body); use a new key.")
    if record["state"] == IN_FLIGHT:
        raise Conflict("A request with this Idempotency-Key is still in progress; retry when it has finished.")
    headers = {name: value for name, value in record["headers"].items() if name != "Content-Type"}
    raw = base64.b64decode(record["body"])
    body = json.loads(raw) if raw else None
    if isinstance(body, dict) and "request_id" in body:  # a problem names the request that gets it (as X-Request-ID does)
        body["request_id"] = getattr(request._request, "request_id", "")
    response = Response(
        body,
        status=record["status"],
        headers={**headers, "Idempotent-Replayed": "true"},
        content_type=record["headers"].get("Content-Type"),
    )
    return response


def idempotency_store(claim: Claim, response: HttpResponseBase) -> None:
    """Keep `response` under the claimed key for the TTL, or release the key when the outcome may change on retry."""
    record = ""
    if response.status_code < 500 and response.status_code not in TRANSIENT_STATUSES:
        render = getattr(response, "render", None)
        if callable(render):
            render()
        record = json.dumps(
            {
                "state": "done",
                "fingerprint": claim.fingerprint,
                "status": response.status_code,
                "headers": {name: response[name] for name in REPLAYED_HEADERS if name in response},
                "body": base64.b64encode(response.content).decode(),  # type: ignore[attr-defined]
            }
        )
    try:
        ttl = int(settings.GATEWAY_API_IDEMPOTENCY_TTL_SECONDS)
        api_redis().eval(_FINISH, 1, claim.redis_key, claim.claim, record, ttl)
    except redis.RedisError as exc:  # the claim expires after its lock time; a retry then runs again
        log.warning("could not store the response of an Idempotency-Key request: %s", exc)

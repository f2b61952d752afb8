"""The base of every admin API view: authentication, rate limits, scope permission, Idempotency-Key, problem+json, pagination.

The request's way through `ApiView.initial` (docs/decisions/0021): authenticate; count the request
against its rate limit (a bad token is counted against the client address, before its 401);
answer 405 (with every method of the path in `Allow`) for a method the path does not serve;
check the scopes and roles; for a POST with `Idempotency-Key`, claim the key or replay the stored
response. `finalize_response` adds the RateLimit-* headers and stores the answer under the key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from accounts.principals import Principal
from gateway.api.authentication import BearerAuthentication
from gateway.api.exception_handler import api_exception_handler
from gateway.api.idempotency import Claim, idempotency_claim, idempotency_store
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMIN_SCOPE_MAP, ApiScopePermission, StaffPermission
from gateway.api.throttling import ApiRateThrottle, RateLimit, rate_limit_headers_set


class _Replay(Exception):
    """Raised from `initial` to answer with a stored response instead of calling the handler."""

    def __init__(self, response: Response) -> None:
        super().__init__("replay")
        self.response = response


class ApiView(APIView):
    """One operation of /api/v1/ (house style rule 16): bearer tokens or the session (with CSRF), scopes as data."""

    authentication_classes = [BearerAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, ApiScopePermission]
    throttle_classes = [ApiRateThrottle]
    # The methods of the whole path when routing.operations() serves it with several views (for 405's Allow).
    route_methods: tuple[str, ...] = ()
    rate_limit: RateLimit | None = None
    idempotency: Claim | None = None

    @property
    def allowed_methods(self) -> list[str]:
        return list(self.route_methods) or super().allowed_methods

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version, request.versioning_scheme = self.determine_version(request, *args, **kwargs)
        try:
            self.perform_authentication(request)
        except exceptions.AuthenticationFailed:
            self.check_throttles(request)  # the credential named nobody: the client address's budget
            raise
        self.check_throttles(request)
        if request.method not in self.allowed_methods:
            raise exceptions.MethodNotAllowed(str(request.method))  # 405 before the roles (a tenant path's PUT is no 403)
        self.check_permissions(request)
        claimed = idempotency_claim(request)
        if isinstance(claimed, Response):
            raise _Replay(claimed)
        self.idempotency = claimed

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Replay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        rate_limit_headers_set(response, self.rate_limit)
        if self.idempotency is not None:
            idempotency_store(self.idempotency, response)
            self.idempotency = None
        return response

    def get_exception_handler(self) -> Callable[..., Any]:
        return api_exception_handler

    def actor(self) -> str:
        """The name the audit log records for the caller."""
        principal = self.request.auth
        return principal.name if isinstance(principal, Principal) else str(self.request.user.username)


class StaffApiView(ApiView):
    """The base of /api/v1/admin/ operations: staff only (403 for others), and a token needs the `admin` scope (decision 0023)."""

    permission_classes = [*ApiView.permission_classes[:1], StaffPermission, *ApiView.permission_classes[1:]]
    scope_map = ADMIN_SCOPE_MAP


def paginate(
    *, request: Request, view: APIView, queryset: QuerySet, serializer: type[BaseSerializer], ordering: str | tuple[str, ...]
) -> Response:
    """One page of `queryset` (ordered by the unique `ordering`, or by fields whose last is unique), serialized, with `next` and a Link header."""
    paginator = ApiCursorPagination()
    paginator.ordering = ordering  # type: ignore[assignment]  # DRF accepts a tuple too
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


def paginate_rows(
    *,
    request: Request,
    view: APIView,
    rows: QuerySet,
    represent: Callable[[dict[str, Any], tzinfo], dict[str, Any]],
    ordering: str | tuple[str, ...],
) -> Response:
    """`paginate` for the big lists: `rows` is a `.values()` queryset (holding the ordering's first field) and
    `represent(row, tz)` writes one item as the view's serializer would (the serializer stays the schema's).

    Building a model instance and a serializer per row was most of a page's CPU (bench/README.md, API section).
    """
    paginator = ApiCursorPagination()
    paginator.ordering = ordering  # type: ignore[assignment]
    page = paginator.paginate_queryset(rows, request, view=view) or []
    tz = timezone.get_current_timezone()
    return paginator.get_paginated_response([represent(row, tz) for row in page])


def iso_datetime(value: datetime | None, tz: tzinfo) -> str | None:
    """A datetime as DRF's DateTimeField writes it (ISO 8601 in the current time zone, `Z` for UTC); None stays None."""
    if value is None:
        return None
    text = (value.astimezone(tz) if value.tzinfo is not None else value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

"""The base of every admin API view: authentication, scope permission, problem+json errors, pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from accounts.principals import Principal
from gateway.api.authentication import BearerAuthentication
from gateway.api.exception_handler import api_exception_handler
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ApiScopePermission


class ApiView(APIView):
    """One operation of /api/v1/ (house style rule 16): bearer tokens or the session (with CSRF), scopes as data."""

    authentication_classes = [BearerAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, ApiScopePermission]

    def get_exception_handler(self) -> Callable[..., Any]:
        return api_exception_handler

    def actor(self) -> str:
        """The name the audit log records for the caller."""
        principal = self.request.auth
        return principal.name if isinstance(principal, Principal) else str(self.request.user.username)


def paginate(
    *, request: Request, view: APIView, queryset: QuerySet, serializer: type[BaseSerializer], ordering: str | tuple[str, ...]
) -> Response:
    """One page of `queryset` (ordered by the unique `ordering`, or by fields whose last is unique), serialized, with `next` and a Link header."""
    paginator = ApiCursorPagination()
    paginator.ordering = ordering  # type: ignore[assignment]  # DRF accepts a tuple too
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)

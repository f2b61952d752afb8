"""Routes for one path served by several one-operation views (GET list and POST create of one collection).

Django calls the first pattern that matches a path, so `operations()` yields a dispatcher that
picks the view by method, followed by each view's own pattern on the same route: Django never
reaches those, but drf-spectacular, which lists APIView patterns, documents each operation from them.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.views import APIView


def operations(route: str, name: str, **views: type[APIView]) -> list[URLPattern]:
    """`route` served by `views` (method → view class); the first view answers other methods (its 405)."""
    callbacks = {method.upper(): view.as_view() for method, view in views.items()}
    if "GET" in callbacks:
        callbacks.setdefault("HEAD", callbacks["GET"])
    fallback = next(iter(callbacks.values()))

    @csrf_exempt  # each APIView enforces CSRF for session callers itself (SessionAuthentication)
    def dispatch(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return callbacks.get(request.method or "", fallback)(request, *args, **kwargs)

    return [path(route, dispatch, name=name)] + [
        path(route, view.as_view(), name=f"{name}-{method.lower()}") for method, view in views.items()
    ]

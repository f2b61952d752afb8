"""Routes for one path served by several one-operation views (GET list and POST create of one collection).

Django calls the first pattern that matches a path, so `operations()` yields a dispatcher that
picks the view by method, followed by each view's own pattern on the same route: Django never
reaches those, but drf-spectacular, which lists APIView patterns, documents each operation from them.
Every view of the path is told all of the path's methods (`route_methods`), so a 405 from any of
them carries an `Allow` header that lists every method the path serves.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.views import APIView


def operations(route: str, name: str, **views: type[APIView]) -> list[URLPattern]:
    """`route` served by `views` (method → view class); the first view answers other methods (its 405)."""
    allowed = sorted({m.upper() for view in views.values() for m in view.http_method_names if hasattr(view, m)})
    if "GET" in allowed and "HEAD" not in allowed:
        allowed = sorted([*allowed, "HEAD"])
    initkwargs = {"route_methods": tuple(allowed)}
    callbacks = {
        method.upper(): view.as_view(**initkwargs if hasattr(view, "route_methods") else {}) for method, view in views.items()
    }
    if "GET" in callbacks:
        callbacks.setdefault("HEAD", callbacks["GET"])
    fallback = next(iter(callbacks.values()))

    @csrf_exempt  # each APIView enforces CSRF for session callers itself (SessionAuthentication)
    def dispatch(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return callbacks.get(request.method or "", fallback)(request, *args, **kwargs)

    return [path(route, dispatch, name=name)] + [
        path(route, view.as_view(), name=f"{name}-{method.lower()}") for method, view in views.items()
    ]

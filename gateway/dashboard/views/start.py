"""Getting started: the organisation's registry endpoint, the docker commands, and its first push appearing live."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from gateway.dashboard.access import org_view
from gateway.dashboard.endpoints import registry_endpoints
from gateway.registry.browse_selectors import tag_latest_get

EXAMPLE_IMAGE = "my-image"  # the local image the commands tag and push
EXAMPLE_TAG = "latest"


def _first_push(request: HttpRequest) -> dict:
    return {"latest": tag_latest_get(tenant=request.org.tenant)}  # type: ignore[attr-defined]


@org_view()
def start(request: HttpRequest, slug: str) -> HttpResponse:
    """The endpoint in both forms, copyable `docker login/tag/push` lines, and the first-push fragment."""
    endpoints = registry_endpoints(slug)
    target = f"{endpoints.prefix}/{EXAMPLE_IMAGE}:{EXAMPLE_TAG}"
    commands = [
        (
            "login",
            "Sign in (your password, or a personal access token)",
            f"docker login {endpoints.domain} -u {request.user.get_username()}",
        ),
        ("tag", "Tag a local image for this organisation", f"docker tag {EXAMPLE_IMAGE}:{EXAMPLE_TAG} {target}"),
        ("push", "Push it", f"docker push {target}"),
    ]
    context = {"nav_current": "start", "endpoints": endpoints, "commands": commands, **_first_push(request)}
    return render(request, "dashboard/start/start.html", context)


@org_view()
def first_push(request: HttpRequest, slug: str) -> HttpResponse:
    """The polled fragment: "waiting" (and polling on) until a tag exists, then the repository and tag (polling stops)."""
    return render(request, "dashboard/start/_first_push.html", _first_push(request))

"""An organisation's robot accounts: `/orgs/<slug>/robots/` (admins and owners, like the admin API).

Create (the secret shown once, with its `docker login` line), edit scopes, patterns and expiry,
rotate (a new secret shown once), revoke. Robots log in as `<slug>+<name>` (accounts.principals).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Membership, RobotAccount, TokenScope
from accounts.selectors import tenant_robot_list
from accounts.services import robot_create, robot_revoke, robot_rotate, robot_update
from gateway.core.errors import ApplicationError
from gateway.dashboard import once
from gateway.dashboard.access import org_view
from gateway.dashboard.forms.credentials import CredentialForm, RobotEditForm

ADMIN = Membership.Role.ADMIN
PAGE = "robots"
# Robots never carry the admin scope (accounts.services refuses it), nor do they reach the admin API's writes.
ROBOT_SCOPES = [s for s in TokenScope.values if s != TokenScope.ADMIN]
DEFAULT_SCOPES = [TokenScope.PULL.value]


def _stash_secret(request: HttpRequest, robot: RobotAccount, secret: str, *, what: str) -> None:
    once.stash(request, PAGE, what=what, username=robot.username, secret=secret, login=once.docker_login_line(robot.username))


def _list(request: HttpRequest, form: CredentialForm | None = None, *, status: int = 200) -> HttpResponse:
    org = request.org  # type: ignore[attr-defined]
    context = {
        "nav_current": "robots",
        "robots": list(tenant_robot_list(tenant=org.tenant)),
        "form": form or CredentialForm(scopes=ROBOT_SCOPES, initial_scopes=DEFAULT_SCOPES),
        "shown_once": once.pop(request, PAGE),
    }
    return render(request, "dashboard/robots/list.html", context, status=status)


@org_view(min_role=ADMIN)
@require_http_methods(["GET", "POST"])
def robots(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the robots and the create form; POST: create one (PRG, the secret shown once)."""
    if request.method != "POST":
        return _list(request)
    org = request.org  # type: ignore[attr-defined]
    form = CredentialForm(request.POST, scopes=ROBOT_SCOPES)
    if form.is_valid():
        try:
            issued = robot_create(tenant=org.tenant, actor=request.user.username, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_error("name", exc.message)  # the form checked the rest: a bad or taken name
        else:
            _stash_secret(request, issued.robot, issued.secret, what="created")
            messages.success(request, f"Robot {issued.username} created.")
            return redirect("dashboard:robots", slug)
    return _list(request, form, status=400)


def _robot(request: HttpRequest, name: str) -> RobotAccount:
    robot = tenant_robot_list(tenant=request.org.tenant).filter(name=name).first()  # type: ignore[attr-defined]
    if robot is None:
        raise Http404("No such robot.")
    return robot


@org_view(min_role=ADMIN)
@require_http_methods(["GET", "POST"])
def robot_edit(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """GET: the edit form of a live robot; POST: change its scopes, patterns and expiry (PRG)."""
    org = request.org  # type: ignore[attr-defined]
    robot = _robot(request, name)
    initial = {"scopes": robot.scopes, "repositories": robot.repositories}
    form = RobotEditForm(request.POST or None, scopes=ROBOT_SCOPES, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                robot_update(tenant=org.tenant, name=name, actor=request.user.username, **form.changes())
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Robot {robot.username} updated.")
                return redirect("dashboard:robots", slug)
    context = {"nav_current": "robots", "robot": robot, "form": form}
    return render(request, "dashboard/robots/edit.html", context, status=status)


@org_view(min_role=ADMIN)
@require_POST
def robot_rotate_view(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Give the robot a new secret (shown once); the old one stops working at once."""
    try:
        issued = robot_rotate(tenant=request.org.tenant, name=name, actor=request.user.username)  # type: ignore[attr-defined]
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        _stash_secret(request, issued.robot, issued.secret, what="rotated")
        messages.success(request, f"Robot {issued.username} has a new secret; the old one no longer works.")
    return redirect("dashboard:robots", slug)


@org_view(min_role=ADMIN)
@require_POST
def robot_revoke_view(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Revoke the robot (and its refresh tokens); its name stays taken."""
    try:
        robot_revoke(tenant=request.org.tenant, name=name, actor=request.user.username)  # type: ignore[attr-defined]
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Robot {slug}+{name} revoked.")
    return redirect("dashboard:robots", slug)

"""Every page of the dashboard on a phone and with the keyboard alone (issue 11), in one walk.

One organisation seeded with something on every page (a multi-platform index with referrers and a
tagged image, members and an invitation, a robot, a token, a webhook with a delivered event, a retention
policy and an immutable-tag rule, GC and audit jobs, audit events), one user who owns it and is staff,
one phone-sized context, one sign-in (and one password confirmation, for the TOTP set-up page). On each page: no sideways scrolling of the document, axe (no
serious or critical violation), no CSP refusal, and the keyboard walk of tests/browser/keyboard.py;
allauth's entrance pages (sign-in, sign-up, password reset) are walked the same way before the sign-in.
`test_every_dashboard_url_is_walked_or_named_as_no_page` keeps the list honest: a new URL in
gateway/dashboard/urls.py fails it until it is walked here or said to be no page (and why).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.apps import apps
from django.test import Client
from django.urls import URLPattern
from django.utils import timezone

from accounts.audit import audit_record
from accounts.invitations import invitation_create
from accounts.models import Tenant, User
from accounts.services import robot_create
from billing.models import Invoice, InvoiceLine
from billing.services import subscription_start
from gateway.dashboard import urls as dashboard_urls
from gateway.registry.models import JobRun
from gateway.registry.services.immutability import immutable_rule_create
from gateway.registry.services.retention import retention_policy_set
from gateway.webhooks.models import WebhookDelivery
from gateway.webhooks.services import webhook_endpoint_create, webhook_event_emit
from gateway.webhooks.tasks import webhook_deliver_task
from tests.billing.conftest import seed_migration as seed_plans
from tests.browser.conftest import axe_check, csp_violations, screenshot, sign_in
from tests.browser.keyboard import keyboard_walk, walk_problems
from tests.dashboard.images import Index, push_index_with_referrers
from tests.factories import UserFactory, make_member, make_tenant, make_token
from tests.helpers import Reg, basic
from tests.replication import conftest as replication_fixtures

hook_server = replication_fixtures.hook_server  # a real HTTP receiver, so the webhook's log holds a delivered event
PASSWORD = "pw-secret-123"  # tests/factories.py UserFactory's

# URL names of gateway/dashboard/urls.py that are no page of their own, and why.
NOT_PAGES = {
    "root": "redirects to home (or to the login page)",
    "org_check_slug": "htmx fragment of org_create (tests/browser/test_repositories.py)",
    "start_first_push": "htmx fragment of start (tests/browser/test_newcomer.py)",
    "staff_queues": "htmx fragment of staff and staff_jobs (tests/browser/test_fragments.py)",
    "webhook_deliveries": "htmx fragment of webhook (tests/browser/test_webhooks.py); without htmx it redirects there",
    "audit_export": "a CSV download (tests/browser/test_fragments.py)",
    "settings_delete": "POST; GET redirects to settings",
    "repository_settings": "POST only",
    "member_invite": "POST only",
    "member_role": "POST only",
    "member_remove": "POST only",
    "invitation_revoke": "POST only",
    "invitation_respond": "POST only",
    "robot_rotate": "POST only",
    "robot_revoke": "POST only",
    "token_revoke": "POST only",
    "staff_tenant_suspend": "POST only",
    "staff_tenant_reactivate": "POST only",
    "staff_tenant_quota": "POST only",
    "webhook_test": "POST only",
    "webhook_redeliver": "POST only",
    "billing_invoice_pdf": "a PDF download (tests/dashboard/test_billing_invoices.py)",
    "billing_usage_csv": "a CSV download (tests/dashboard/test_billing_invoices.py)",
    "billing_checkout": "POST only",
    "billing_payment_methods": "POST only",
}
HTMX_SETTLED = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
# allauth's pages for someone not signed in, walked before the sign-in.
ENTRANCE_PAGES = [
    ("account_login", "/accounts/login/"),
    ("account_signup", "/accounts/signup/"),
    ("account_reset_password", "/accounts/password/reset/"),
    ("account_reset_password_done", "/accounts/password/reset/done/"),
    ("account_email_verification_sent", "/accounts/confirm-email/"),
]
# The signed-in user's allauth pages (the account sidebar of templates/dashboard/security/_account_nav.html).
ACCOUNT_PAGES = [
    ("account_email", "/accounts/email/"),
    ("account_change_password", "/accounts/password/change/"),
    ("mfa_index", "/accounts/2fa/"),
    ("socialaccount_connections", "/accounts/3rdparty/"),
    ("account_reauthenticate", "/accounts/reauthenticate/"),
    ("mfa_activate_totp", "/accounts/2fa/totp/activate/"),  # after the reauthentication the walk starts with
]


@dataclass
class Seeded:
    user: User
    tenant: Tenant
    index: Index
    invitation_token: str
    robot: str
    webhook_id: int
    retention_id: int
    rule_id: int
    gc_job_id: int
    staff_job_id: int
    invoice: str


def _seed(hook_url: str) -> Seeded:
    """One organisation with real content on every page; its owner is staff too (one sign-in for the whole walk)."""
    slug = "e" + uuid.uuid4().hex[:10]  # the live server caches tenants briefly: never reuse a slug
    user = UserFactory(username="o" + slug, is_staff=True)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)  # as after sign-up: MFA needs it
    tenant = make_tenant(slug, owner=user)
    reg = Reg(Client(), basic(user.username, make_token(user)), prefix=f"/v2/{slug}")
    index = push_index_with_referrers(reg, "team/app", "1.0", arches=("amd64", "arm64"))
    reg.push_image("team/app", "v1", [slug.encode() * 300])
    reg.push_image("tools/ci-runner-with-a-rather-long-repository-name", "2026.11.30-build.1234", [b"ci" * 200])
    make_member(tenant, "writer", username="w" + slug)
    invitation_create(tenant=tenant, email=f"new-{slug}@example.com", role="reader", by_role="owner", actor=user.username)
    other = make_tenant("i" + slug[1:])  # invites the walker: home lists it, the invitation page offers accept/decline
    invited = invitation_create(tenant=other, email=user.email, role="writer", by_role="owner", actor="someone")
    robot_create(tenant=tenant, name="ci", scopes=["pull", "push"], repositories=["team/*"], actor=user.username)
    hook = webhook_endpoint_create(tenant=tenant, url=hook_url, events=["*"], description="CI notifications").endpoint
    webhook_event_emit(tenant=tenant, event="integrity.problem", data={"digest": index.digest})
    assert webhook_deliver_task(delivery_id=WebhookDelivery.objects.get(endpoint=hook).pk) == "delivered"
    retention = retention_policy_set(tenant=tenant, keep_last=3)
    rule = immutable_rule_create(tenant=tenant, repository_pattern="team/*", tag_pattern="v1", actor=user.username)
    gc_job = JobRun.objects.create(
        kind="gc", tenant=tenant, state=JobRun.State.SUCCEEDED, counts={"blobs_marked": 4, "blobs_deleted": 1}, bytes_freed=4096
    )
    staff_job = JobRun.objects.create(
        kind="audit", tenant=tenant, state=JobRun.State.FAILED, errors=[{"error": "storage timed out", "digest": index.digest}]
    )
    for actor, action, target in [("olivia", "tag.delete", "team/app:old"), ("rita", "membership.set", "sam")]:
        audit_record(tenant=tenant, actor=actor, action=action, target=target)
    seed_plans.seed(apps, None)  # a transactional test's flush took the seeded plans
    subscription_start(tenant=tenant, plan_code="pro")  # after the pushes: the billing pages show a plan, Free a downgrade
    invoice = _invoice_seed(tenant)
    return Seeded(user, tenant, index, invited.token, "ci", hook.pk, retention.pk, rule.pk, gc_job.pk, staff_job.pk, invoice)


def _invoice_seed(tenant: Tenant) -> str:
    """An issued invoice of last month (the tenant subscribed only now, so none could be generated), voided, with a
    credit line: the page's VOID notice and credit rows are walked too (decision 0051). Its number."""
    end = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    number = f"{tenant.slug}-000001"
    invoice = Invoice.objects.create(
        tenant=tenant,
        period_start=(end - timedelta(days=1)).replace(day=1),
        period_end=end,
        status=Invoice.Status.VOID,
        voided_at=end,
        issuer=tenant.slug,
        sequence=1,
        number=number,
        currency="USD",
        billed_to=tenant.slug,
        subtotal_minor=900,
        total_minor=800,
        issued_at=end,
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        position=1,
        kind=InvoiceLine.Kind.BASE,
        description="Pro plan",
        quantity=1,
        unit="month",
        unit_price_minor=900,
        amount_minor=900,
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        position=2,
        kind=InvoiceLine.Kind.CREDIT,
        description="Outage credit",
        quantity=1,
        unit="credit",
        unit_price_minor=-100,
        amount_minor=-100,
    )
    return number


# (URL name, path) of every page the walk opens, filled in from the seeded rows (_paths).
PAGES = [
    ("home", "/orgs/"),
    ("org_create", "/orgs/new/"),
    ("org", "{org}/"),
    ("start", "{org}/start/"),
    ("repositories", "{org}/repositories/"),
    ("repository", "{repo}/"),
    ("manifest", "{repo}/manifests/{index}/"),
    ("manifest", "{repo}/manifests/{platform}/"),
    ("tag_delete", "{repo}/-/tags/v1/delete/"),
    ("manifest_delete", "{repo}/-/manifests/{platform}/delete/"),
    ("repository_delete", "{repo}/-/delete/"),
    ("members", "{org}/members/"),
    ("invitation", "/invitations/{invitation}/"),
    ("robots", "{org}/robots/"),
    ("robot_edit", "{org}/robots/{robot}/"),
    ("tokens", "/settings/tokens/"),
    ("usage", "{org}/usage/"),
    ("audit", "{org}/audit/"),
    ("settings", "{org}/settings/"),
    ("webhooks", "{org}/webhooks/"),
    ("webhook_new", "{org}/webhooks/new/"),
    ("webhook", "{org}/webhooks/{webhook}/"),
    ("webhook_delete", "{org}/webhooks/{webhook}/delete/"),
    ("policies", "{org}/policies/"),
    ("policies_plan", "{org}/policies/plan/"),
    ("retention_new", "{org}/policies/retention/new/"),
    ("retention_edit", "{org}/policies/retention/{retention}/"),
    ("retention_delete", "{org}/policies/retention/{retention}/delete/"),
    ("rule_new", "{org}/policies/immutable/new/"),
    ("rule_edit", "{org}/policies/immutable/{rule}/"),
    ("rule_delete", "{org}/policies/immutable/{rule}/delete/"),
    ("gc", "{org}/gc/"),
    ("gc_job", "{org}/gc/jobs/{gc_job}/"),
    ("sessions", "/accounts/sessions/"),
    ("staff", "/staff/"),
    ("staff_tenants", "/staff/tenants/"),
    ("staff_tenant", "/staff/tenants/{slug}/"),
    ("staff_jobs", "/staff/jobs/"),
    ("staff_job", "/staff/jobs/{staff_job}/"),
    ("billing", "{org}/billing/"),
    ("billing_plan", "{org}/billing/plans/free/"),
    ("billing_invoice", "{org}/billing/invoices/{invoice}/"),
    *ACCOUNT_PAGES,
]


def _paths(s: Seeded) -> list[tuple[str, str]]:
    slug = s.tenant.slug
    values = {
        "slug": slug,
        "org": f"/orgs/{slug}",
        "repo": f"/orgs/{slug}/repositories/team/app",
        "index": s.index.digest,
        "platform": s.index.platforms[1].digest,
        "invitation": s.invitation_token,
        "robot": s.robot,
        "webhook": s.webhook_id,
        "retention": s.retention_id,
        "rule": s.rule_id,
        "gc_job": s.gc_job_id,
        "staff_job": s.staff_job_id,
        "invoice": s.invoice,
    }
    return [(name, pattern.format(**values)) for name, pattern in PAGES]


def _dashboard_url_names() -> set[str]:
    return {p.name for p in dashboard_urls.urlpatterns if isinstance(p, URLPattern) and p.name}


def test_every_dashboard_url_is_walked_or_named_as_no_page():
    walked = {name for name, _ in PAGES} - {name for name, _ in ACCOUNT_PAGES}
    dashboard = _dashboard_url_names()
    assert not walked & NOT_PAGES.keys()
    assert walked | NOT_PAGES.keys() == dashboard, (
        f"neither walked nor in NOT_PAGES: {sorted(dashboard - walked - NOT_PAGES.keys())}; "
        f"no longer in urls.py: {sorted((walked | NOT_PAGES.keys()) - dashboard)}"
    )


def _reauthenticate(page) -> None:
    """Confirm the password once (allauth asks before MFA changes), so the walk sees the TOTP set-up page itself."""
    page.goto("/accounts/reauthenticate/")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    assert "/accounts/reauthenticate/" not in page.url, page.url


def _problems(page, path: str) -> list[str]:
    """Everything wrong with the page at `path` on this phone, by keyboard, for axe and for the CSP (empty: none)."""
    page.csp_errors.clear()
    response = page.goto(path)
    page.wait_for_function(HTMX_SETTLED)  # a fragment loaded on opening (hx-trigger="load") is in place
    problems = []
    if response is None or response.status != 200 or not page.url.endswith(path):
        problems.append(f"GET answered {response and response.status} at {page.url}")
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    if width[0] > width[1]:
        problems.append(f"the document scrolls sideways on a phone: {width[0]} px wide in {width[1]} px")
    try:
        axe_check(page)
    except AssertionError as exc:
        problems.append(str(exc))
    return problems + csp_violations(page) + walk_problems(keyboard_walk(page))


def test_every_page_fits_a_phone_passes_axe_and_works_by_keyboard(new_context, live, hook_server):
    seeded = _seed(hook_server.url)
    page = new_context(phone=True).new_page()
    page.csp_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: page.csp_errors.append(msg.text) if msg.type == "error" else None)
    failures: dict[str, list[str]] = {}
    started = time.monotonic()
    for name, path in [*ENTRANCE_PAGES, ("sign-in", ""), *_paths(seeded)]:
        if name == "sign-in":
            sign_in(page, seeded.user)
            _reauthenticate(page)
        elif problems := _problems(page, path):
            failures[f"{name} {path}"] = problems
            screenshot(page, f"test_every_page_{name}")
    elapsed = time.monotonic() - started
    assert not failures, "\n".join(f"{where}:\n  " + "\n  ".join(found) for where, found in failures.items())
    print(f"walked {len(ENTRANCE_PAGES) + len(PAGES)} pages in {elapsed:.1f} s")

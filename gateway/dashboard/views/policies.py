"""Retention policies and immutable-tag rules: any member reads them (as in the API), admins and owners edit them.

Each editor previews before saving: as the form changes (htmx, 400 ms after typing stops) or on
"Preview", the page lists what retention would delete and what immutable rules protect, from
`retention_plan` — the evaluation the real run uses — with the unsaved policy (or rule) in place of
the saved one. Only "Save" writes. Saves lock the row and refuse when it changed since the form was
opened (the form's `version`), so two admins never overwrite each other unknowingly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import Membership
from gateway.core.errors import ApplicationError, Conflict, ValidationError
from gateway.dashboard.access import org_view
from gateway.dashboard.forms.policies import ImmutableRuleForm, RetentionPolicyForm
from gateway.dashboard.forms.webhooks import apply_domain_error
from gateway.registry import locks, selectors
from gateway.registry.models import ImmutableTagRule, Repository, RetentionPolicy
from gateway.registry.services.immutability import (
    immutable_rule_create,
    immutable_rule_delete,
    immutable_rule_draft,
    immutable_rule_matches,
    immutable_rule_update,
)
from gateway.registry.services.retention_policies import (
    retention_policy_create,
    retention_policy_delete,
    retention_policy_draft,
    retention_policy_update,
)
from gateway.registry.services.retention_rules import retention_plan

ADMIN = Membership.Role.ADMIN
STALE = (
    "Someone changed this {what} after you opened it: nothing was saved. Its current values are shown; make your change again."
)
IMMUTABLE_REASONS = ("immutable_tag", "immutable_rule")


class _Stale(Exception):
    pass


def _actor(request: HttpRequest) -> str:
    return str(request.user.username)


def _tenant(request: HttpRequest) -> Any:
    return request.org.tenant  # type: ignore[attr-defined]


def _action(request: HttpRequest) -> str:
    """`save` only when the Save button sent the form; anything else (htmx, Enter in a field, Preview) previews."""
    return "save" if request.method == "POST" and request.POST.get("action") == "save" else "preview"


@org_view()
def policies(request: HttpRequest, slug: str) -> HttpResponse:
    """The saved retention policies and immutable-tag rules."""
    tenant = _tenant(request)
    context = {
        "nav_current": "policies",
        "retention_policies": list(selectors.retention_policy_list(tenant=tenant).order_by("pk")),
        "rules": list(selectors.immutable_rule_list(tenant=tenant).order_by("pk")),
    }
    return render(request, "dashboard/policies/index.html", context)


def _plan_context(plan: Any) -> dict[str, Any]:
    immutable = [v for v in plan.protected if v.reason in IMMUTABLE_REASONS]
    kept = [v for v in plan.protected if v.reason not in IMMUTABLE_REASONS]
    return {"plan": plan, "plan_immutable": immutable, "plan_kept": kept}


@org_view()
def plan(request: HttpRequest, slug: str) -> HttpResponse:
    """The dry run of the saved policies: what retention would delete now, and what it keeps and why."""
    context = {"nav_current": "policies", **_plan_context(retention_plan(tenant=_tenant(request)))}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "dashboard/policies/_plan.html", context)
    return render(request, "dashboard/policies/plan.html", context)


# -- retention policies -----------------------------------------------------------------------------


def _scope(request: HttpRequest, form: RetentionPolicyForm) -> Repository | None:
    if form.policy is not None:
        return form.policy.repository
    name = form.cleaned_data.get("repository")
    if name is None:
        return None
    repository = selectors.repository_get(tenant=_tenant(request), name=name)
    if repository is None:
        message = f"There is no repository {name!r} in this organisation."
        raise ValidationError(message, extra={"errors": {"repository": message}})
    return repository


def _retention_save(request: HttpRequest, form: RetentionPolicyForm, repository: Repository | None) -> RetentionPolicy:
    tenant, values = _tenant(request), form.values()
    if form.policy is None:
        try:
            return retention_policy_create(tenant=tenant, repository=repository, actor=_actor(request), **values)
        except Conflict:
            message = f"{_scope_label(repository).capitalize()} has a retention policy already: change that one instead."
            raise ValidationError(message, extra={"errors": {"repository": message}}) from None
    with transaction.atomic():
        locked = locks.retention_policy_for_update(tenant=tenant, policy_id=form.policy.pk)
        if locked is None:
            raise Http404("No such policy.")
        if form.cleaned_data.get("version") != locked.updated_at.isoformat():
            raise _Stale
        return retention_policy_update(tenant=tenant, policy=locked, actor=_actor(request), **values)


def _retention_editor(request: HttpRequest, slug: str, policy: RetentionPolicy | None) -> HttpResponse:
    form = RetentionPolicyForm(request.POST if request.method == "POST" else None, policy=policy)
    context: dict[str, Any] = {"nav_current": "policies", "form": form, "policy": policy, "previewed": False}
    if request.method == "POST" and form.is_valid():
        try:
            repository = _scope(request, form)
            draft = retention_policy_draft(tenant=_tenant(request), repository=repository, **form.values())
            if _action(request) == "save":
                saved = _retention_save(request, form, repository)
                messages.success(request, f"Retention policy for {_scope_name(saved)} saved.")
                return redirect("dashboard:policies", slug)
        except _Stale:
            messages.error(request, STALE.format(what="policy"))
            return redirect("dashboard:retention_edit", slug, policy.pk)  # type: ignore[union-attr]
        except ApplicationError as exc:
            apply_domain_error(form, exc)
        else:
            context.update(previewed=True, **_plan_context(retention_plan(tenant=_tenant(request), draft=draft)))
    if request.htmx and request.method == "POST":  # type: ignore[attr-defined]
        return render(request, "dashboard/policies/_retention_preview.html", context)
    return render(request, "dashboard/policies/retention_form.html", context)


def _scope_label(repository: Repository | None) -> str:
    return "the whole organisation" if repository is None else f"repository {repository.name}"


def _scope_name(policy: RetentionPolicy) -> str:
    return _scope_label(policy.repository)


@org_view(min_role=ADMIN)
def retention_new(request: HttpRequest, slug: str) -> HttpResponse:
    """A new policy for the organisation or one repository, previewed before it is saved."""
    return _retention_editor(request, slug, None)


def _policy(request: HttpRequest, policy_id: int) -> RetentionPolicy:
    found = selectors.retention_policy_get(tenant=_tenant(request), policy_id=policy_id)
    if found is None:
        raise Http404("No such policy.")
    return found


@org_view(min_role=ADMIN)
def retention_edit(request: HttpRequest, slug: str, policy_id: int) -> HttpResponse:
    """Change a policy (not its scope), previewed before it is saved."""
    return _retention_editor(request, slug, _policy(request, policy_id))


@org_view(min_role=ADMIN)
def retention_delete(request: HttpRequest, slug: str, policy_id: int) -> HttpResponse:
    """GET: the confirmation; POST: remove the policy."""
    policy = _policy(request, policy_id)
    return _confirm_delete(
        request,
        slug,
        target=policy,
        lock=lambda: locks.retention_policy_for_update(tenant=_tenant(request), policy_id=policy.pk),
        remove=lambda locked: retention_policy_delete(tenant=_tenant(request), policy=locked, actor=_actor(request)),
        what=f"the retention policy for {_scope_name(policy)}",
        done=f"Retention policy for {_scope_name(policy)} removed.",
        back="dashboard:retention_edit",
    )


def _confirm_delete(
    request: HttpRequest,
    slug: str,
    *,
    target: Any,
    lock: Callable[[], Any],
    remove: Callable[[Any], None],
    what: str,
    done: str,
    back: str,
) -> HttpResponse:
    """GET: the confirmation page for `what`; POST: lock the row (404 if it is gone meanwhile), remove it, back to the list."""
    if request.method == "POST":
        with transaction.atomic():
            locked = lock()
            if locked is None:
                raise Http404("It was removed meanwhile.")
            remove(locked)
        messages.success(request, done)
        return redirect("dashboard:policies", slug)
    context = {"nav_current": "policies", "what": what, "back": back, "target": target}
    return render(request, "dashboard/policies/delete.html", context)


# -- immutable-tag rules ----------------------------------------------------------------------------


def _rule_save(request: HttpRequest, form: ImmutableRuleForm) -> ImmutableTagRule:
    tenant, actor = _tenant(request), _actor(request)
    patterns = {k: form.cleaned_data[k] for k in ("repository_pattern", "tag_pattern")}
    if form.rule is None:
        return immutable_rule_create(tenant=tenant, actor=actor, **patterns)
    with transaction.atomic():
        locked = locks.immutable_rule_for_update(tenant=tenant, rule_id=form.rule.pk)
        if locked is None:
            raise Http404("No such rule.")
        if form.cleaned_data.get("version") != locked.updated_at.isoformat():
            raise _Stale
        return immutable_rule_update(tenant=tenant, rule=locked, actor=actor, **patterns)


def _rule_preview(request: HttpRequest, draft: ImmutableTagRule) -> dict[str, Any]:
    """The tags the draft rule matches, and those the saved retention policies would delete but the rule keeps."""
    tenant = _tenant(request)
    matches, count = immutable_rule_matches(tenant=tenant, rule=draft)
    before = retention_plan(tenant=tenant)
    after = retention_plan(tenant=tenant, rule_draft=draft)
    still = {v.tag_id for v in after.delete}
    rescued = [v for v in before.delete if v.tag_id not in still]
    return {"previewed": True, "matches": matches, "match_count": count, "rescued": rescued, **_plan_context(after)}


def _rule_editor(request: HttpRequest, slug: str, rule: ImmutableTagRule | None) -> HttpResponse:
    form = ImmutableRuleForm(request.POST if request.method == "POST" else None, rule=rule)
    context: dict[str, Any] = {"nav_current": "policies", "form": form, "rule": rule, "previewed": False}
    if request.method == "POST" and form.is_valid():
        patterns = {k: form.cleaned_data[k] for k in ("repository_pattern", "tag_pattern")}
        try:
            draft = immutable_rule_draft(tenant=_tenant(request), rule=rule, **patterns)
            if _action(request) == "save":
                _rule_save(request, form)
                messages.success(
                    request, f"Immutable-tag rule {patterns['repository_pattern'] or '*'}:{patterns['tag_pattern']} saved."
                )
                return redirect("dashboard:policies", slug)
        except _Stale:
            messages.error(request, STALE.format(what="rule"))
            return redirect("dashboard:rule_edit", slug, rule.pk)  # type: ignore[union-attr]
        except ApplicationError as exc:
            apply_domain_error(form, exc)
        else:
            context.update(_rule_preview(request, draft))
    if request.htmx and request.method == "POST":  # type: ignore[attr-defined]
        return render(request, "dashboard/policies/_rule_preview.html", context)
    return render(request, "dashboard/policies/rule_form.html", context)


def _rule(request: HttpRequest, rule_id: int) -> ImmutableTagRule:
    found = selectors.immutable_rule_get(tenant=_tenant(request), rule_id=rule_id)
    if found is None:
        raise Http404("No such rule.")
    return found


@org_view(min_role=ADMIN)
def rule_new(request: HttpRequest, slug: str) -> HttpResponse:
    """A new immutable-tag rule, previewed (the tags it protects) before it is saved."""
    return _rule_editor(request, slug, None)


@org_view(min_role=ADMIN)
def rule_edit(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    """Change a rule's patterns, previewed before it is saved."""
    return _rule_editor(request, slug, _rule(request, rule_id))


@org_view(min_role=ADMIN)
def rule_delete(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    """GET: the confirmation; POST: remove the rule (its tags become mutable again unless flagged)."""
    rule = _rule(request, rule_id)
    name = f"{rule.repository_pattern or '*'}:{rule.tag_pattern}"
    return _confirm_delete(
        request,
        slug,
        target=rule,
        lock=lambda: locks.immutable_rule_for_update(tenant=_tenant(request), rule_id=rule.pk),
        remove=lambda locked: immutable_rule_delete(tenant=_tenant(request), rule=locked, actor=_actor(request)),
        what=f"the immutable-tag rule {name} (its tags become mutable again)",
        done=f"Immutable-tag rule {name} removed.",
        back="dashboard:rule_edit",
    )

"""Retention policies: /api/v1/tenants/{slug}/retention-policies[/{id}] and the dry run /retention-policies/dry-run.

One policy per scope: the tenant (`repository` null) or one repository, whose policy wins over
the tenant's (models.RetentionPolicy). Any member reads; admins and owners write; GET and writes
return an `ETag`, PATCH/DELETE need `If-Match`. The dry run (any member: it changes nothing)
answers what retention would delete and what it keeps and why, for the saved policies or with
an unsaved `policy` in place of its scope's, from the same evaluation the real run uses
(gateway/registry/services/retention_rules.py).
"""

from __future__ import annotations

import django_filters
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api.base import ApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, if_match_locked
from gateway.api.filtering import filter_parameters, filtered
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, ANY_ROLE, READ, TenantMemberPermission
from gateway.api.views.repositories import _repository
from gateway.core.errors import NotFound
from gateway.registry import locks, selectors
from gateway.registry.models import Repository, RetentionPolicy
from gateway.registry.services.retention import MAX_DAYS, MAX_KEEP_LAST, RetentionPolicyInvalid
from gateway.registry.services.retention_policies import (
    retention_policy_create,
    retention_policy_delete,
    retention_policy_draft,
    retention_policy_update,
)
from gateway.registry.services.retention_rules import retention_plan

POLICY_ID = OpenApiParameter("policy_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The policy's id.")


class RetentionPolicyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    repository = serializers.CharField(source="repository.name", allow_null=True, help_text="null: the tenant-wide policy.")
    enabled = serializers.BooleanField()
    keep_last = serializers.IntegerField(allow_null=True, help_text="Keep this many most recently pushed tags.")
    older_than_days = serializers.IntegerField(allow_null=True, help_text="Delete only tags pushed longer ago.")
    delete_regex = serializers.CharField(help_text="Delete only tags fully matching (empty: every tag).")
    keep_regex = serializers.CharField(help_text="Never delete tags fully matching (empty: no exemption).")
    untagged_days = serializers.IntegerField(allow_null=True, help_text="GC keeps untagged manifests this many days.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class _ValuesSerializer(serializers.Serializer):
    """A policy's values (the service checks them again, and compiles the regexes)."""

    enabled = serializers.BooleanField(required=False)
    keep_last = serializers.IntegerField(min_value=0, max_value=MAX_KEEP_LAST, allow_null=True, required=False)
    older_than_days = serializers.IntegerField(min_value=0, max_value=MAX_DAYS, allow_null=True, required=False)
    delete_regex = serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=False, required=False)
    keep_regex = serializers.CharField(max_length=255, allow_blank=True, trim_whitespace=False, required=False)
    untagged_days = serializers.IntegerField(min_value=0, max_value=MAX_DAYS, allow_null=True, required=False)


class _NewPolicySerializer(_ValuesSerializer):
    repository = serializers.CharField(max_length=255, allow_null=True, default=None, help_text="null: the tenant-wide policy.")


class RetentionPolicyFilter(django_filters.FilterSet):
    repository = django_filters.CharFilter(field_name="repository__name", label="The policy of this repository.")
    scope = django_filters.ChoiceFilter(
        choices=[("tenant", "tenant"), ("repository", "repository")],
        method="scope_filter",
        label="`tenant`: the tenant-wide policy; `repository`: those of single repositories.",
    )
    enabled = django_filters.BooleanFilter(label="Enabled (or disabled) policies only.")

    class Meta:
        model = RetentionPolicy
        fields = ["repository", "scope", "enabled"]

    def scope_filter(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(repository__isnull=value == "tenant")


def _scope(request: Request, name: str | None, field: str) -> Repository | None:
    """The repository a new or draft policy is for (None: the tenant); a 400 on `field` if the caller sees no such repository."""
    if name is None:
        return None
    try:
        return _repository(request, name)
    except NotFound as exc:
        raise serializers.ValidationError({field: [exc.message]}) from None


class _PolicyApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE, "POST": ADMINS, "PATCH": ADMINS, "DELETE": ADMINS}

    def missing(self, policy_id: int) -> str:
        return f"No retention policy {policy_id} in {self.request.tenant.slug!r}."  # type: ignore[attr-defined]


class RetentionPolicyListApi(_PolicyApi):
    """The tenant's retention policies, oldest first, a page at a time."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(RetentionPolicyOutputSerializer):
        pass

    @extend_schema(
        operation_id="retention_policies_list",
        tags=["policies"],
        summary="The tenant's retention policies",
        parameters=filter_parameters(RetentionPolicyFilter),
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        policies = filtered(request, RetentionPolicyFilter, selectors.retention_policy_list(tenant=request.tenant))  # type: ignore[attr-defined]
        return paginate(request=request, view=self, queryset=policies, serializer=self.OutputSerializer, ordering="pk")


class RetentionPolicyCreateApi(_PolicyApi):
    """Add the policy of the tenant or of one repository (409 if that scope has one). Audited."""

    class InputSerializer(_NewPolicySerializer):
        pass

    class OutputSerializer(RetentionPolicyOutputSerializer):
        pass

    @extend_schema(
        operation_id="retention_policies_create",
        tags=["policies"],
        summary="Add a retention policy (admins and owners)",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        repository = _scope(request, values.pop("repository"), "repository")
        policy = retention_policy_create(tenant=request.tenant, repository=repository, actor=self.actor(), **values)  # type: ignore[attr-defined]
        return etag_response(self.OutputSerializer(policy).data, status_code=status.HTTP_201_CREATED)


class RetentionPolicyGetApi(_PolicyApi):
    """One policy, with its ETag."""

    class OutputSerializer(RetentionPolicyOutputSerializer):
        pass

    @extend_schema(
        operation_id="retention_policies_get",
        tags=["policies"],
        summary="One retention policy",
        parameters=[POLICY_ID],
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str, policy_id: int) -> Response:
        policy = selectors.retention_policy_get(tenant=request.tenant, policy_id=policy_id)  # type: ignore[attr-defined]
        if policy is None:
            raise NotFound(self.missing(policy_id))
        return etag_response(self.OutputSerializer(policy).data)


class RetentionPolicyUpdateApi(_PolicyApi):
    """Change some of a policy's values (not its scope; If-Match). Audited."""

    class InputSerializer(_ValuesSerializer):
        pass

    class OutputSerializer(RetentionPolicyOutputSerializer):
        pass

    @extend_schema(
        operation_id="retention_policies_update",
        tags=["policies"],
        summary="Change a retention policy (admins and owners; If-Match)",
        parameters=[POLICY_ID, IF_MATCH],
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def patch(self, request: Request, slug: str, policy_id: int) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            locked = locks.retention_policy_for_update(tenant=tenant, policy_id=policy_id)
            policy = if_match_locked(request, locked, self.OutputSerializer, self.missing(policy_id))
            policy = retention_policy_update(tenant=tenant, policy=policy, actor=self.actor(), **serializer.validated_data)
        return etag_response(self.OutputSerializer(policy).data)


class RetentionPolicyDeleteApi(_PolicyApi):
    """Remove a policy (If-Match). Audited."""

    @extend_schema(
        operation_id="retention_policies_delete",
        tags=["policies"],
        summary="Remove a retention policy (admins and owners; If-Match)",
        parameters=[POLICY_ID, IF_MATCH],
        responses={204: OpenApiResponse(description="Removed.")},
    )
    def delete(self, request: Request, slug: str, policy_id: int) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        with transaction.atomic():
            locked = locks.retention_policy_for_update(tenant=tenant, policy_id=policy_id)
            policy = if_match_locked(request, locked, RetentionPolicyOutputSerializer, self.missing(policy_id))
            retention_policy_delete(tenant=tenant, policy=policy, actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)


class _VerdictSerializer(serializers.Serializer):
    repository = serializers.CharField()
    tag = serializers.CharField(source="name")
    digest = serializers.CharField()
    last_pushed_at = serializers.DateTimeField(source="pushed")
    because = serializers.ListField(child=serializers.CharField())


class _ProtectedSerializer(_VerdictSerializer):
    reason = serializers.ChoiceField(
        choices=["immutable_tag", "immutable_rule", "keep_last", "keep_regex", "delete_regex", "too_new"],
        help_text="What keeps the tag; `because` says it in words.",
    )


class RetentionDryRunApi(_PolicyApi):
    """What retention would delete now and what it keeps, and why; changes nothing."""

    scope_map = {"POST": READ}  # it changes nothing: reading suffices
    tenant_roles = {"POST": ANY_ROLE}

    class InputSerializer(serializers.Serializer):
        policy = _NewPolicySerializer(
            required=False, allow_null=True, default=None, help_text="A policy not saved yet, in place of its scope's."
        )

    class OutputSerializer(serializers.Serializer):
        complete = serializers.BooleanField(
            help_text="False when the tenant has more repositories than one dry run covers (500)."
        )
        repositories = serializers.IntegerField(help_text="Repositories a policy applies to.")
        delete_count = serializers.IntegerField()
        protected_count = serializers.IntegerField()
        delete = _VerdictSerializer(many=True, help_text="The tags retention would delete (at most 1000 listed).")
        protected = _ProtectedSerializer(many=True, help_text="The tags it keeps (at most 1000 listed).")

    @extend_schema(
        operation_id="retention_policies_dry_run",
        tags=["policies"],
        summary="Dry run: what retention would delete and keep, for the saved policies or an unsaved one",
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        draft = None
        if serializer.validated_data["policy"] is not None:
            values = dict(serializer.validated_data["policy"])
            repository = _scope(request, values.pop("repository"), "policy.repository")
            try:
                draft = retention_policy_draft(tenant=tenant, repository=repository, **values)
            except RetentionPolicyInvalid as exc:
                raise RetentionPolicyInvalid(exc.message, extra={"errors": {"policy": exc.extra["errors"]}}) from None
        return Response(self.OutputSerializer(retention_plan(tenant=tenant, draft=draft)).data)

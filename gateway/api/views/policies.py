"""Immutable-tag rules: /api/v1/tenants/{slug}/immutable-tag-rules[/{id}] — any member reads, admins and owners write.

A rule makes every tag matching its fnmatch `tag_pattern`, in repositories matching its
`repository_pattern` (empty: all), immutable: a push may not move it, DELETE and retention
never delete it (gateway/registry/services/immutability.py). Rules are edited concurrently, so
GET and writes return an `ETag`, and PATCH/DELETE need `If-Match` (gateway/api/conditional.py).
The helpers here (filters applied to a selector's queryset, the If-Match check on a locked row)
serve views/retention_policies.py too.
"""

from __future__ import annotations

import django_filters
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api.base import ApiView, paginate
from gateway.api.conditional import IF_MATCH, etag_response, if_match_locked
from gateway.api.filtering import filter_parameters, filtered
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, ANY_ROLE, TenantMemberPermission
from gateway.core.errors import NotFound
from gateway.registry import locks, selectors
from gateway.registry.models import ImmutableTagRule
from gateway.registry.services.immutability import (
    REPOSITORY_PATTERN_MAX,
    TAG_PATTERN_MAX,
    immutable_rule_create,
    immutable_rule_delete,
    immutable_rule_update,
)

_FILTER_TYPES = {django_filters.BooleanFilter: OpenApiTypes.BOOL, django_filters.NumberFilter: OpenApiTypes.INT}


RULE_ID = OpenApiParameter("rule_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The rule's id.")


class ImmutableRuleOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    repository_pattern = serializers.CharField(help_text="fnmatch pattern of repository names (`*` crosses `/`); empty: all.")
    tag_pattern = serializers.CharField(help_text="fnmatch pattern of tag names (a full, case-sensitive match).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ImmutableRuleFilter(django_filters.FilterSet):
    repository_pattern = django_filters.CharFilter(label="Rules with exactly this repository pattern.")
    tag_pattern = django_filters.CharFilter(label="Rules with exactly this tag pattern.")

    class Meta:
        model = ImmutableTagRule
        fields = ["repository_pattern", "tag_pattern"]


class _RuleApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    tenant_roles = {"GET": ANY_ROLE, "POST": ADMINS, "PATCH": ADMINS, "DELETE": ADMINS}

    def missing(self, rule_id: int) -> str:
        return f"No immutable-tag rule {rule_id} in {self.request.tenant.slug!r}."  # type: ignore[attr-defined]


class ImmutableRuleListApi(_RuleApi):
    """The tenant's immutable-tag rules, oldest first, a page at a time."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(ImmutableRuleOutputSerializer):
        pass

    @extend_schema(
        operation_id="immutable_tag_rules_list",
        tags=["policies"],
        summary="The tenant's immutable-tag rules",
        parameters=filter_parameters(ImmutableRuleFilter),
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        rules = filtered(request, ImmutableRuleFilter, selectors.immutable_rule_list(tenant=request.tenant))  # type: ignore[attr-defined]
        return paginate(request=request, view=self, queryset=rules, serializer=self.OutputSerializer, ordering="pk")


class ImmutableRuleCreateApi(_RuleApi):
    """Add a rule (409 if one with the same patterns exists). Audited."""

    class InputSerializer(serializers.Serializer):
        repository_pattern = serializers.CharField(
            max_length=REPOSITORY_PATTERN_MAX, allow_blank=True, default="", trim_whitespace=False
        )
        tag_pattern = serializers.CharField(max_length=TAG_PATTERN_MAX, trim_whitespace=False)

    class OutputSerializer(ImmutableRuleOutputSerializer):
        pass

    @extend_schema(
        operation_id="immutable_tag_rules_create",
        tags=["policies"],
        summary="Add an immutable-tag rule (admins and owners)",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = immutable_rule_create(tenant=request.tenant, actor=self.actor(), **serializer.validated_data)  # type: ignore[attr-defined]
        return etag_response(self.OutputSerializer(rule).data, status_code=status.HTTP_201_CREATED)


class ImmutableRuleGetApi(_RuleApi):
    """One rule, with its ETag."""

    class OutputSerializer(ImmutableRuleOutputSerializer):
        pass

    @extend_schema(
        operation_id="immutable_tag_rules_get",
        tags=["policies"],
        summary="One immutable-tag rule",
        parameters=[RULE_ID],
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str, rule_id: int) -> Response:
        rule = selectors.immutable_rule_get(tenant=request.tenant, rule_id=rule_id)  # type: ignore[attr-defined]
        if rule is None:
            raise NotFound(self.missing(rule_id))
        return etag_response(self.OutputSerializer(rule).data)


class ImmutableRuleUpdateApi(_RuleApi):
    """Change a rule's patterns (If-Match). Audited."""

    class InputSerializer(serializers.Serializer):
        repository_pattern = serializers.CharField(
            max_length=REPOSITORY_PATTERN_MAX, allow_blank=True, required=False, trim_whitespace=False
        )
        tag_pattern = serializers.CharField(max_length=TAG_PATTERN_MAX, required=False, trim_whitespace=False)

    class OutputSerializer(ImmutableRuleOutputSerializer):
        pass

    @extend_schema(
        operation_id="immutable_tag_rules_update",
        tags=["policies"],
        summary="Change an immutable-tag rule (admins and owners; If-Match)",
        parameters=[RULE_ID, IF_MATCH],
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def patch(self, request: Request, slug: str, rule_id: int) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            locked = locks.immutable_rule_for_update(tenant=tenant, rule_id=rule_id)
            rule = if_match_locked(request, locked, self.OutputSerializer, self.missing(rule_id))
            rule = immutable_rule_update(tenant=tenant, rule=rule, actor=self.actor(), **serializer.validated_data)
        return etag_response(self.OutputSerializer(rule).data)


class ImmutableRuleDeleteApi(_RuleApi):
    """Remove a rule (If-Match): its tags are mutable again unless flagged one by one. Audited."""

    @extend_schema(
        operation_id="immutable_tag_rules_delete",
        tags=["policies"],
        summary="Remove an immutable-tag rule (admins and owners; If-Match)",
        parameters=[RULE_ID, IF_MATCH],
        responses={204: OpenApiResponse(description="Removed.")},
    )
    def delete(self, request: Request, slug: str, rule_id: int) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        with transaction.atomic():
            locked = locks.immutable_rule_for_update(tenant=tenant, rule_id=rule_id)
            rule = if_match_locked(request, locked, ImmutableRuleOutputSerializer, self.missing(rule_id))
            immutable_rule_delete(tenant=tenant, rule=rule, actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)

"""Background jobs: /api/v1/tenants/{slug}/jobs[/{id}] (list, get, start a GC or an audit) and /api/v1/admin/jobs (staff).

Every member reads the tenant's runs; admins and owners start them. A started job answers 202
with the queued run and its `Location`; the worker fills in the same run (docs/decisions/0026).
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.api.base import ApiView, StaffApiView, paginate
from gateway.api.filtering import filter_parameters, filtered
from gateway.api.pagination import ApiCursorPagination
from gateway.api.permissions import ADMINS, ANY_ROLE, TenantMemberPermission
from gateway.core.errors import NotFound
from gateway.registry import selectors
from gateway.registry.models import JobRun
from gateway.registry.services.jobs import JOB_KINDS, STARTABLE, job_start

KIND_CHOICES = [(k, k) for k in JOB_KINDS]
START_CHOICES = [(k, k) for k in STARTABLE]
STATE_CHOICES = JobRun.State.choices


class JobFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=KIND_CHOICES, help_text="Only runs of this job.")
    state = django_filters.ChoiceFilter(choices=STATE_CHOICES, help_text="Only runs in this state.")

    class Meta:
        model = JobRun
        fields = ["kind", "state"]


class AdminJobFilter(JobFilter):
    tenant = django_filters.CharFilter(field_name="tenant__slug", help_text="Only runs of the tenant with this slug.")

    class Meta:
        model = JobRun
        fields = ["tenant", "kind", "state"]


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text=f"One of: {', '.join(JOB_KINDS)}.")
    tenant = serializers.CharField(
        source="tenant.slug", allow_null=True, help_text="The tenant's slug (null: a run of no tenant)."
    )
    target = serializers.CharField(help_text="What the run concerns (a repository being deleted); empty: the whole tenant.")
    state = serializers.ChoiceField(choices=STATE_CHOICES)
    dry_run = serializers.BooleanField()
    started_at = serializers.DateTimeField(help_text="When it was queued, then when a worker started it.")
    heartbeat_at = serializers.DateTimeField(help_text="The last progress a worker recorded.")
    finished_at = serializers.DateTimeField(allow_null=True)
    counts = serializers.DictField(child=serializers.JSONField(), help_text="Progress so far: what it looked at and did.")
    bytes_freed = serializers.IntegerField(help_text="Bytes deleted from storage (a dry run: what a real run would free).")
    # The metaclass takes declared fields out of the class, so Serializer.errors stays what it is.
    errors = serializers.ListField(child=serializers.DictField(), help_text='Each with "error", the message.')  # type: ignore[assignment]


def job_location(slug: str, job: JobRun) -> str:
    """The URL of the tenant's job, for `Location`."""
    return reverse("tenant-job", kwargs={"slug": slug, "job_id": job.pk})


class _TenantJobApi(ApiView):
    permission_classes = [*ApiView.permission_classes, TenantMemberPermission]
    deleting_tenant_visible = True  # a tenant's deletion is followed here (DELETE's Location) until it is gone
    tenant_roles = {"GET": ANY_ROLE, "POST": ADMINS}


class JobListApi(_TenantJobApi):
    """The tenant's job runs, newest first, filtered by kind and state."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(JobOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_jobs_list",
        tags=["jobs"],
        summary="The tenant's job runs, newest first",
        parameters=filter_parameters(JobFilter),
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        jobs = filtered(request, JobFilter, selectors.jobrun_list(tenant=request.tenant))  # type: ignore[attr-defined]
        return paginate(request=request, view=self, queryset=jobs, serializer=self.OutputSerializer, ordering="-pk")


class JobGetApi(_TenantJobApi):
    """One job run of the tenant: its state and progress."""

    class OutputSerializer(JobOutputSerializer):
        pass

    @extend_schema(operation_id="tenant_jobs_get", tags=["jobs"], summary="One job run", responses=OutputSerializer)
    def get(self, request: Request, slug: str, job_id: int) -> Response:
        job = selectors.jobrun_get(tenant=request.tenant, run_id=job_id)  # type: ignore[attr-defined]
        if job is None:
            raise NotFound(f"No job {job_id} in {slug!r}.")
        return Response(self.OutputSerializer(job).data)


class JobCreateApi(_TenantJobApi):
    """Start a GC (or a dry run of one) or an integrity audit of the tenant: 202 with the queued run. Admins and owners; audited."""

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=START_CHOICES)
        dry_run = serializers.BooleanField(default=False, help_text="gc only: report what would go, delete nothing.")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["dry_run"] and attrs["kind"] != "gc":
                raise serializers.ValidationError({"dry_run": ["Only a gc has a dry run."]})
            return attrs

    class OutputSerializer(JobOutputSerializer):
        pass

    @extend_schema(
        operation_id="tenant_jobs_create",
        tags=["jobs"],
        summary="Start a GC or an integrity audit (409 while a GC of the tenant is queued or running)",
        request=InputSerializer,
        responses={202: OutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = job_start(tenant=request.tenant, actor=self.actor(), **serializer.validated_data)  # type: ignore[attr-defined]
        data = self.OutputSerializer(job).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": job_location(slug, job)})


class AdminJobListApi(StaffApiView):
    """Job runs of every tenant, newest first, filtered by tenant, kind and state. Staff only."""

    pagination_class = ApiCursorPagination

    class OutputSerializer(JobOutputSerializer):
        pass

    @extend_schema(
        operation_id="admin_jobs_list",
        tags=["admin"],
        summary="Job runs of every tenant, newest first (staff)",
        parameters=filter_parameters(AdminJobFilter),
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        jobs = filtered(request, AdminJobFilter, selectors.jobrun_list(tenant=None))
        return paginate(request=request, view=self, queryset=jobs, serializer=self.OutputSerializer, ordering="-pk")

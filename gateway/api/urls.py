"""/api/v1/ routes (one view per operation) and the schema and its offline docs under /api/."""

from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from gateway.api.converters import RepositoryNameConverter, TagNameConverter
from gateway.api.routing import operations
from gateway.api.views.admin_queues import AdminQueuesGetApi
from gateway.api.views.admin_tenants import (
    AdminQuotaGetApi,
    AdminQuotaSetApi,
    AdminTenantGetApi,
    AdminTenantListApi,
    AdminTenantReactivateApi,
    AdminTenantSuspendApi,
)
from gateway.api.views.audit import AuditEventExportApi, AuditEventListApi
from gateway.api.views.billing import (
    BillingUsageGetApi,
    PlanListApi,
    SubscriptionGetApi,
    SubscriptionSetApi,
    SubscriptionUpdateApi,
)
from gateway.api.views.billing_admin import AdminPlanCreateApi, AdminPlanGetApi, AdminPlanListApi, AdminPlanUpdateApi
from gateway.api.views.invitations import (
    InvitationAcceptApi,
    InvitationCreateApi,
    InvitationListApi,
    InvitationRevokeApi,
    UserInvitationAcceptApi,
    UserInvitationListApi,
)
from gateway.api.views.invoices import InvoiceGetApi, InvoiceListApi, InvoicePdfApi
from gateway.api.views.invoices_admin import AdminCreditCreateApi, AdminInvoiceListApi, AdminInvoiceVoidApi
from gateway.api.views.jobs import AdminJobListApi, JobCreateApi, JobGetApi, JobListApi
from gateway.api.views.manifests import ManifestDeleteApi, ManifestGetApi
from gateway.api.views.members import MemberGetApi, MemberListApi, MemberRemoveApi, MemberRoleSetApi
from gateway.api.views.policies import (
    ImmutableRuleCreateApi,
    ImmutableRuleDeleteApi,
    ImmutableRuleGetApi,
    ImmutableRuleListApi,
    ImmutableRuleUpdateApi,
)
from gateway.api.views.replication import (
    ReplicationGetApi,
    ReplicationSetApi,
    ReplicationStatusApi,
    TenantTargetCreateApi,
    TenantTargetDeleteApi,
    TenantTargetGetApi,
    TenantTargetListApi,
    TenantTargetUpdateApi,
)
from gateway.api.views.replication_admin import (
    AdminTargetCreateApi,
    AdminTargetDeleteApi,
    AdminTargetGetApi,
    AdminTargetListApi,
    AdminTargetUpdateApi,
)
from gateway.api.views.repositories import (
    RepositoryDeleteApi,
    RepositoryGetApi,
    RepositoryListApi,
    RepositoryUpdateApi,
    TagDeleteApi,
    TagGetApi,
    TagListApi,
)
from gateway.api.views.retention_policies import (
    RetentionDryRunApi,
    RetentionPolicyCreateApi,
    RetentionPolicyDeleteApi,
    RetentionPolicyGetApi,
    RetentionPolicyListApi,
    RetentionPolicyUpdateApi,
)
from gateway.api.views.robots import RobotCreateApi, RobotListApi, RobotRevokeApi, RobotRotateApi, RobotUpdateApi
from gateway.api.views.tenants import TenantCreateApi, TenantDeleteApi, TenantGetApi, TenantListApi, TenantUpdateApi
from gateway.api.views.tokens import TokenCreateApi, TokenListApi, TokenRevokeApi
from gateway.api.views.usage import UsageGetApi
from gateway.api.views.user import UserGetApi
from gateway.api.views.webhooks import (
    WebhookCreateApi,
    WebhookDeleteApi,
    WebhookDeliveryListApi,
    WebhookGetApi,
    WebhookListApi,
    WebhookRedeliverApi,
    WebhookTestApi,
    WebhookUpdateApi,
)

register_converter(RepositoryNameConverter, "repository")
register_converter(TagNameConverter, "tag")
REPOSITORY = "tenants/<str:slug>/repositories/<repository:name>"
WEBHOOK = "tenants/<str:slug>/webhooks/<int:webhook_id>"
IMMUTABLE_RULES = "tenants/<str:slug>/immutable-tag-rules"
RETENTION_POLICIES = "tenants/<str:slug>/retention-policies"

v1 = [
    path("user", UserGetApi.as_view(), name="user-get"),
    *operations("user/tokens", "user-tokens", GET=TokenListApi, POST=TokenCreateApi),
    path("user/tokens/<int:token_id>", TokenRevokeApi.as_view(), name="user-token-revoke"),
    *operations("tenants", "tenants", GET=TenantListApi, POST=TenantCreateApi),
    *operations("tenants/<str:slug>", "tenant", GET=TenantGetApi, PATCH=TenantUpdateApi, DELETE=TenantDeleteApi),
    *operations("tenants/<str:slug>/robots", "tenant-robots", GET=RobotListApi, POST=RobotCreateApi),
    *operations("tenants/<str:slug>/robots/<str:name>", "tenant-robot", PATCH=RobotUpdateApi, DELETE=RobotRevokeApi),
    path("tenants/<str:slug>/robots/<str:name>/rotate", RobotRotateApi.as_view(), name="tenant-robot-rotate"),
    path("tenants/<str:slug>/members", MemberListApi.as_view(), name="tenant-members-list"),
    *operations(
        "tenants/<str:slug>/members/<str:username>",
        "tenant-member",
        GET=MemberGetApi,
        PATCH=MemberRoleSetApi,
        DELETE=MemberRemoveApi,
    ),
    path("tenants/<str:slug>/repositories", RepositoryListApi.as_view(), name="repositories-list"),
    *operations(REPOSITORY, "repository", GET=RepositoryGetApi, PATCH=RepositoryUpdateApi, DELETE=RepositoryDeleteApi),
    path(f"{REPOSITORY}/-/tags", TagListApi.as_view(), name="repository-tags-list"),
    *operations(f"{REPOSITORY}/-/tags/<tag:tag>", "repository-tag", GET=TagGetApi, DELETE=TagDeleteApi),
    path("tenants/<str:slug>/audit-events", AuditEventListApi.as_view(), name="tenant-audit-events-list"),
    path("tenants/<str:slug>/audit-events.csv", AuditEventExportApi.as_view(), name="tenant-audit-events-export"),
    path("tenants/<str:slug>/usage", UsageGetApi.as_view(), name="tenant-usage-get"),
    # webhooks and replication (docs/decisions/0025)
    *operations("tenants/<str:slug>/webhooks", "webhooks", GET=WebhookListApi, POST=WebhookCreateApi),
    *operations(WEBHOOK, "webhook", GET=WebhookGetApi, PATCH=WebhookUpdateApi, DELETE=WebhookDeleteApi),
    path(f"{WEBHOOK}/test", WebhookTestApi.as_view(), name="webhook-test"),
    path(f"{WEBHOOK}/deliveries", WebhookDeliveryListApi.as_view(), name="webhook-deliveries-list"),
    path(f"{WEBHOOK}/deliveries/<int:delivery_id>/redeliver", WebhookRedeliverApi.as_view(), name="webhook-delivery-redeliver"),
    *operations("tenants/<str:slug>/replication", "replication", GET=ReplicationGetApi, PUT=ReplicationSetApi),
    path("tenants/<str:slug>/replication/status", ReplicationStatusApi.as_view(), name="replication-status"),
    *operations(
        "tenants/<str:slug>/replication/targets", "replication-targets", GET=TenantTargetListApi, POST=TenantTargetCreateApi
    ),
    *operations(
        "tenants/<str:slug>/replication/targets/<str:name>",
        "replication-target",
        GET=TenantTargetGetApi,
        PATCH=TenantTargetUpdateApi,
        DELETE=TenantTargetDeleteApi,
    ),
    *operations("admin/replication-targets", "admin-replication-targets", GET=AdminTargetListApi, POST=AdminTargetCreateApi),
    *operations(
        "admin/replication-targets/<str:name>",
        "admin-replication-target",
        GET=AdminTargetGetApi,
        PATCH=AdminTargetUpdateApi,
        DELETE=AdminTargetDeleteApi,
    ),
    # Platform operators (staff): docs/decisions/0023.
    path("admin/tenants", AdminTenantListApi.as_view(), name="admin-tenants-list"),
    path("admin/tenants/<str:slug>", AdminTenantGetApi.as_view(), name="admin-tenants-get"),
    path("admin/tenants/<str:slug>/suspend", AdminTenantSuspendApi.as_view(), name="admin-tenants-suspend"),
    path("admin/tenants/<str:slug>/reactivate", AdminTenantReactivateApi.as_view(), name="admin-tenants-reactivate"),
    *operations("admin/tenants/<str:slug>/quota", "admin-tenant-quota", GET=AdminQuotaGetApi, PATCH=AdminQuotaSetApi),
    path("admin/queues", AdminQueuesGetApi.as_view(), name="admin-queues-get"),
    *operations(f"{REPOSITORY}/-/manifests/<str:digest>", "repository-manifest", GET=ManifestGetApi, DELETE=ManifestDeleteApi),
    *operations(IMMUTABLE_RULES, "immutable-tag-rules", GET=ImmutableRuleListApi, POST=ImmutableRuleCreateApi),
    *operations(
        f"{IMMUTABLE_RULES}/<int:rule_id>",
        "immutable-tag-rule",
        GET=ImmutableRuleGetApi,
        PATCH=ImmutableRuleUpdateApi,
        DELETE=ImmutableRuleDeleteApi,
    ),
    *operations(RETENTION_POLICIES, "retention-policies", GET=RetentionPolicyListApi, POST=RetentionPolicyCreateApi),
    path(f"{RETENTION_POLICIES}/dry-run", RetentionDryRunApi.as_view(), name="retention-policies-dry-run"),
    *operations(
        f"{RETENTION_POLICIES}/<int:policy_id>",
        "retention-policy",
        GET=RetentionPolicyGetApi,
        PATCH=RetentionPolicyUpdateApi,
        DELETE=RetentionPolicyDeleteApi,
    ),
    *operations("tenants/<str:slug>/jobs", "tenant-jobs", GET=JobListApi, POST=JobCreateApi),
    path("tenants/<str:slug>/jobs/<int:job_id>", JobGetApi.as_view(), name="tenant-job"),
    path("admin/jobs", AdminJobListApi.as_view(), name="admin-jobs-list"),
    *operations("tenants/<str:slug>/invitations", "tenant-invitations", GET=InvitationListApi, POST=InvitationCreateApi),
    path("tenants/<str:slug>/invitations/<int:invitation_id>", InvitationRevokeApi.as_view(), name="tenant-invitation-revoke"),
    path("user/invitations", UserInvitationListApi.as_view(), name="user-invitations-list"),
    path("user/invitations/<int:invitation_id>/accept", UserInvitationAcceptApi.as_view(), name="user-invitation-accept"),
    path("invitations/accept", InvitationAcceptApi.as_view(), name="invitations-accept"),
    # billing (docs/decisions/0046)
    path("plans", PlanListApi.as_view(), name="plans-list"),
    *operations(
        "tenants/<str:slug>/subscription",
        "tenant-subscription",
        GET=SubscriptionGetApi,
        PUT=SubscriptionSetApi,
        PATCH=SubscriptionUpdateApi,
    ),
    path("tenants/<str:slug>/billing/usage", BillingUsageGetApi.as_view(), name="tenant-billing-usage-get"),
    *operations("admin/plans", "admin-plans", GET=AdminPlanListApi, POST=AdminPlanCreateApi),
    *operations("admin/plans/<str:code>", "admin-plan", GET=AdminPlanGetApi, PATCH=AdminPlanUpdateApi),
    # invoices (docs/decisions/0044, 0046); the PDF's route first: a number never ends in ".pdf"
    path("tenants/<str:slug>/invoices", InvoiceListApi.as_view(), name="tenant-invoices-list"),
    path("tenants/<str:slug>/invoices/<str:number>.pdf", InvoicePdfApi.as_view(), name="tenant-invoice-pdf"),
    path("tenants/<str:slug>/invoices/<str:number>", InvoiceGetApi.as_view(), name="tenant-invoice-get"),
    # staff: every invoice, void, credit (docs/decisions/0051)
    path("admin/tenants/<str:slug>/invoices", AdminInvoiceListApi.as_view(), name="admin-tenant-invoices-list"),
    path("admin/tenants/<str:slug>/invoices/<str:number>/void", AdminInvoiceVoidApi.as_view(), name="admin-tenant-invoice-void"),
    path("admin/tenants/<str:slug>/credits", AdminCreditCreateApi.as_view(), name="admin-tenant-credits-create"),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("docs/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

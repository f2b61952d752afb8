"""Dashboard routes: `/` and `/orgs/…` (accounts pages are allauth's under /accounts/)."""

from django.urls import path

from gateway.dashboard.views import home, staff

app_name = "dashboard"

urlpatterns = [
    path("", home.root, name="root"),
    path("orgs/", home.home, name="home"),
    path("orgs/<slug:slug>/", home.org_overview, name="org"),
    # staff (the console for platform operators; access.staff_view)
    path("staff/", staff.console, name="staff"),
    path("staff/queues/", staff.queues, name="staff_queues"),
    path("staff/tenants/", staff.tenant_list, name="staff_tenants"),
    path("staff/tenants/<slug:slug>/", staff.tenant_detail, name="staff_tenant"),
    path("staff/tenants/<slug:slug>/suspend/", staff.tenant_suspend_view, name="staff_tenant_suspend"),
    path("staff/tenants/<slug:slug>/reactivate/", staff.tenant_reactivate_view, name="staff_tenant_reactivate"),
    path("staff/tenants/<slug:slug>/quota/", staff.tenant_quota_view, name="staff_tenant_quota"),
    path("staff/jobs/", staff.job_list, name="staff_jobs"),
    path("staff/jobs/<int:job_id>/", staff.job_detail, name="staff_job"),
]

from django.contrib import admin
from django.urls import include, path

from gateway import health

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("admin/", admin.site.urls),
    path("api/", include("gateway.api.urls")),
    # The dashboard first: its /accounts/sessions/ replaces allauth.usersessions' page (same URL).
    path("", include("gateway.dashboard.urls")),
    path("accounts/", include("allauth.urls")),
    path("", include("gateway.registry.v2.urls")),
]

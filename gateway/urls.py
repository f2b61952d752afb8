from django.contrib import admin
from django.urls import include, path

from billing import views as billing_views
from gateway import health

urlpatterns = [
    # The registry first: every docker pull resolves /v2/ routes, and each pattern tried before them costs (decision 0047).
    # Its patterns are anchored on ^v2/ and ^auth/token$, which no other app routes.
    path("", include("gateway.registry.v2.urls")),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("admin/", admin.site.urls),
    path("billing/webhooks/stripe/", billing_views.stripe_webhook, name="billing-stripe-webhook"),
    path("api/", include("gateway.api.urls")),
    # The dashboard before allauth: its /accounts/sessions/ replaces allauth.usersessions' page (same URL).
    path("", include("gateway.dashboard.urls")),
    path("accounts/", include("allauth.urls")),
]

"""Seed the Free, Pro and Team plans (docs/decisions/0039 states and explains the numbers); staff edit them afterwards."""

from django.db import migrations

GB = 1000**3

PLANS = [
    {
        "code": "free",
        "name": "Free",
        "monthly_price_minor": 0,
        "storage_quota_bytes": 2 * GB,
        "private_repositories_limit": 1,
        "members_limit": 3,
        "robots_limit": 1,
        "pulls_per_window_authenticated": 200,
        "pulls_per_window_anonymous": 100,
        "egress_bytes_per_month_limit": 10 * GB,
        "storage_overage_minor_per_gb": 0,
        "egress_overage_minor_per_gb": 0,
    },
    {
        "code": "pro",
        "name": "Pro",
        "monthly_price_minor": 900,
        "storage_quota_bytes": 50 * GB,
        "private_repositories_limit": None,
        "members_limit": 10,
        "robots_limit": 10,
        "pulls_per_window_authenticated": 5000,
        "pulls_per_window_anonymous": 1000,
        "egress_bytes_per_month_limit": 500 * GB,
        "storage_overage_minor_per_gb": 10,
        "egress_overage_minor_per_gb": 5,
    },
    {
        "code": "team",
        "name": "Team",
        "monthly_price_minor": 4900,
        "storage_quota_bytes": 500 * GB,
        "private_repositories_limit": None,
        "members_limit": None,
        "robots_limit": 100,
        "pulls_per_window_authenticated": None,
        "pulls_per_window_anonymous": 10000,
        "egress_bytes_per_month_limit": 5000 * GB,
        "storage_overage_minor_per_gb": 8,
        "egress_overage_minor_per_gb": 4,
    },
]


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for plan in PLANS:
        # get_or_create: a plan staff already made under one of these codes is theirs and stays as it is.
        Plan.objects.get_or_create(code=plan["code"], defaults={**plan, "currency": "USD", "is_active": True})


def unseed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.filter(code__in=[p["code"] for p in PLANS], subscriptions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_plans")]

    operations = [migrations.RunPython(seed, unseed)]

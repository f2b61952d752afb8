from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing.metering import TYPES, usage_records_fold
        from gateway.registry.services.events import subscribe

        # The meter adds pulls and egress to UsageRecord rows in the stream's delivery transaction (decision 0041).
        subscribe(name="billing", types=TYPES, handler=usage_records_fold)

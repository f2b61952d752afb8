from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "gateway.registry"
    label = "registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gateway.registry.services.events import subscribe
        from gateway.registry.services.usage import USAGE_TYPES, usage_events_store

        subscribe(name="usage", types=USAGE_TYPES, handler=usage_events_store)

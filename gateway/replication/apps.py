from django.apps import AppConfig


class ReplicationConfig(AppConfig):
    name = "gateway.replication"
    label = "replication"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gateway.registry.services.events import subscribe
        from gateway.replication.subscriber import TYPES, replication_events_handle

        subscribe(name="replication", types=TYPES, handler=replication_events_handle)

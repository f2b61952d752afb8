from django.apps import AppConfig


class ReplicationConfig(AppConfig):
    name = "gateway.replication"
    label = "replication"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "gateway.core"
    label = "core"

    def ready(self) -> None:
        from gateway.core import logging as _logging

        _logging.connect_celery()

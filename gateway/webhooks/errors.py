"""Webhook errors, importable without loading services (the task decorator needs them at import)."""


class WebhookDeliveryError(Exception):
    """This attempt failed in a way worth retrying (the task retries it with backoff)."""

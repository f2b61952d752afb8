"""Outgoing webhooks: tenant endpoints, signed JSON deliveries, retried with backoff (app label "webhooks")."""

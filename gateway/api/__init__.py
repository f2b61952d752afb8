"""The admin REST API at /api/v1/ (DRF; docs/decisions/0019). Only gateway.urls imports it."""

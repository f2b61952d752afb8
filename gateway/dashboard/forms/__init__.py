"""Dashboard forms, one module per area."""

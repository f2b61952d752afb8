"""CSV downloads of admin API lists: the DRF side (the streaming and the cell quoting are gateway.core.csv_export)."""

from __future__ import annotations

from rest_framework.renderers import JSONRenderer

from gateway.core.csv_export import FORMULA_STARTS, csv_cell, csv_lines, csv_response

__all__ = ["FORMULA_STARTS", "CsvRenderer", "csv_cell", "csv_lines", "csv_response"]


class CsvRenderer(JSONRenderer):
    """Lets `Accept: text/csv` through DRF's content negotiation; the view streams the CSV itself.

    Errors on such a request are still problem+json bodies (JSON, with their own content type).
    """

    media_type = "text/csv"
    format = "csv"

"""CSV downloads (the admin API's and the dashboard's): streamed row by row, safe to open in a spreadsheet (docs/decisions/0027).

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (OWASP "CSV injection"); such cells get a leading `'`, which the
spreadsheets show as text. Everything else is written as it is.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 500  # rows joined into one write to the socket


class _Line:
    """The file-like object csv.writer writes one line to; `write` hands the line back."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> str:
    """One cell: None as empty, booleans as true/false, text that a spreadsheet would run as a formula quoted with `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header and then every row as CSV text, a few hundred lines per chunk (constant memory)."""
    writer = csv.writer(_Line())
    yield writer.writerow(header)
    chunk: list[str] = []
    for row in rows:
        chunk.append(writer.writerow([csv_cell(v) for v in row]))
        if len(chunk) >= ROWS_PER_CHUNK:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def csv_response(*, filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> StreamingHttpResponse:
    """A streamed `text/csv` download of `rows` under `header`."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

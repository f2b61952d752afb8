"""Template filters every dashboard area shares: `{% load wharf %}`.

- `bytes_binary`: a byte count in binary units (KiB = 1024 B, MiB, GiB, TiB), one decimal above bytes;
  pair it with the exact count in a `title` (`{{ n|intcomma_plain }} bytes`).
- `intcomma_plain`: an integer with thin grouping (1,234,567), without loading django.contrib.humanize.
"""

from __future__ import annotations

from django import template

register = template.Library()

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@register.filter
def bytes_binary(value: object) -> str:
    """`1536` → "1.5 KiB"; "" for None or a value that is not a number."""
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return ""
    sign, size = ("-" if n < 0 else ""), float(abs(n))
    if size < 1024:
        return f"{sign}{int(size)} B"
    unit = 0
    while size >= 1024 and unit < len(UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{sign}{size:.1f} {UNITS[unit]}"


@register.filter
def intcomma_plain(value: object) -> str:
    """`1234567` → "1,234,567"; the value unchanged as text when it is not an integer."""
    try:
        return f"{int(value):,}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "" if value is None else str(value)

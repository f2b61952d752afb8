"""Template filters of the dashboard: `{{ n|binarysize }}` shows bytes in binary units (KiB, MiB, …)."""

from __future__ import annotations

from django import template

register = template.Library()

_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


@register.filter
def binarysize(value: object) -> str:
    """`1536` → "1.5 KiB"; below 1 KiB the exact count ("512 bytes", "1 byte"); not a number → "" (give the exact value in a `title`)."""
    try:
        size = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return ""
    if abs(size) < 1024:
        return f"{size} byte" if abs(size) == 1 else f"{size} bytes"
    scaled, unit = float(size), 0
    while abs(scaled) >= 1024 and unit < len(_UNITS) - 1:
        scaled /= 1024
        unit += 1
    text = f"{scaled:.1f}".rstrip("0").rstrip(".")
    return f"{text} {_UNITS[unit]}"

"""Template filters of the dashboard: `{{ n|bytes_binary }}` → "1.5 MiB" (exact bytes belong in a `title`)."""

from __future__ import annotations

from django import template

register = template.Library()

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


@register.filter
def bytes_binary(value: object) -> str:
    """Bytes in binary units, one decimal above 1 KiB ("0 B", "999 B", "1.5 KiB", "3.0 GiB"); "—" for no number."""
    try:
        size = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "—"
    if abs(size) < 1024:
        return f"{size} B"
    scaled = float(size)
    for unit in _UNITS:
        scaled /= 1024
        if abs(scaled) < 1024 or unit == _UNITS[-1]:
            return f"{scaled:.1f} {unit}"
    return f"{size} B"  # unreachable


@register.filter
def short_digest(value: object) -> str:
    """`sha256:0123456789ab…` → `sha256:0123456789ab` (the algorithm and 12 hex digits)."""
    text = str(value or "")
    algorithm, _, hexpart = text.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else text[:19]

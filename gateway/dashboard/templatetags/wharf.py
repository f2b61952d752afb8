"""Template filters every dashboard page may use: `{% load wharf %}`.

- `binary_bytes`: a byte count in binary units (KiB, MiB, …: 1 KiB = 1024 bytes), for people;
  put the exact count in a `title` next to it (`exact_bytes`), for people who check.
- `short_digest`: `sha256:` and the first 12 hex digits (the full digest belongs in a `title` or a copy button).
"""

from __future__ import annotations

from django import template

register = template.Library()

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


@register.filter
def binary_bytes(value: object) -> str:
    """1536 → "1.5 KiB"; under 1 KiB the exact count ("512 bytes"); "—" for no value."""
    if value is None or value == "":
        return "—"
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "—"
    if abs(n) < 1024:
        return "1 byte" if n == 1 else f"{n} bytes"
    size = float(n)
    for unit in _UNITS:
        size /= 1024
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.1f} {unit}" if abs(size) < 100 else f"{size:.0f} {unit}"
    raise AssertionError("unreachable")


@register.filter
def exact_bytes(value: object) -> str:
    """12345 → "12,345 bytes" (for a `title`)."""
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return ""
    return "1 byte" if n == 1 else f"{n:,} bytes"


@register.filter
def short_digest(value: object) -> str:
    """ "sha256:0123456789abcdef…" → "sha256:0123456789ab"."""
    text = str(value or "")
    algorithm, _, hexpart = text.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else text

"""Template filters every dashboard area shares: `{% load wharf %}`.

- `binarysize` (also spelled `bytes_binary`, `binary_bytes`): a byte count in binary units (KiB = 1024 B, MiB, …); below
  1 KiB the exact count. Pair it with the exact count in a `title` (`{{ n|intcomma_plain }} bytes`).
- `exact_bytes`: "12,345 bytes", for that `title`.
- `decimalsize`: a byte count in decimal units (GB = 10^9 bytes), as plans are priced.
- `short_digest`: `sha256:` and 12 hex digits (the full digest in a `title` or a copy button).
- `intcomma_plain`: an integer with grouping (1,234,567), without loading django.contrib.humanize.
- `usd`: a Decimal amount of US dollars ("$7.00", "$0.0000032"), the exact value for a `title` as `{{ amount }}`.
- `tag_badges`: tag names as `<span class="badge tag">` elements, joined in Python (a manifest may list 1,000 tags:
  one filter call instead of a template loop's thousands of nodes).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def _scaled_size(value: object, base: int, units: tuple[str, ...]) -> str:
    """A byte count in `units` of powers of `base`, one decimal at most; below `base` the exact count; not a number → ""."""
    try:
        size = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return ""
    if abs(size) < base:
        return f"{size} byte" if abs(size) == 1 else f"{size} bytes"
    scaled, unit = float(size), 0
    while abs(scaled) >= base and unit < len(units) - 1:
        scaled /= base
        unit += 1
    text = f"{scaled:.1f}".rstrip("0").rstrip(".")
    return f"{text} {units[unit]}"


@register.filter
def binarysize(value: object) -> str:
    """`1536` → "1.5 KiB"; below 1 KiB the exact count ("512 bytes", "1 byte"); not a number → ""."""
    return _scaled_size(value, 1024, _UNITS)


# The same filter under the names the areas first gave it.
bytes_binary = binary_bytes = register.filter("bytes_binary", binarysize)
register.filter("binary_bytes", binarysize)


@register.filter
def exact_bytes(value: object) -> str:
    """12345 → "12,345 bytes" (for a `title` beside `binarysize`)."""
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return ""
    return "1 byte" if n == 1 else f"{n:,} bytes"


@register.filter
def intcomma_plain(value: object) -> str:
    """`1234567` → "1,234,567"; the value unchanged as text when it is not an integer."""
    try:
        return f"{int(value):,}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "" if value is None else str(value)


@register.filter
def short_digest(value: object) -> str:
    """`sha256:0123456789ab…` → `sha256:0123456789ab` (the algorithm and 12 hex digits)."""
    text = str(value or "")
    algorithm, _, hexpart = text.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else text[:19]


@register.filter
def tag_badges(names: Iterable[str]) -> SafeString:
    """Each name escaped in its own `<span class="badge tag">`, separated by spaces; no names → ""."""
    return mark_safe(" ".join(f'<span class="badge tag">{escape(name)}</span>' for name in names))  # noqa: S308 - every name escaped


_DECIMAL_UNITS = ("bytes", "kB", "MB", "GB", "TB", "PB")


@register.filter
def decimalsize(value: object) -> str:
    """`2_000_000_000` → "2 GB": decimal units (GB = 10^9 bytes), as plans and storage providers bill; not a number → ""."""
    return _scaled_size(value, 1000, _DECIMAL_UNITS)


@register.filter
def usd(value: object) -> str:
    """A Decimal of US dollars for reading: "$12.35" from a cent up, two significant digits below ("$0.0000032"), "-$1.20".

    At most 10 places (what billing keeps); zero is "$0.00"; not a number → "".
    """
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ""
    if not amount.is_finite():
        return ""
    places = 2 if abs(amount) >= Decimal("0.01") or amount == 0 else min(10, 1 - amount.adjusted())
    text = f"{abs(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,f}"
    return f"-${text}" if amount < 0 else f"${text}"

"""What long tables compute once in Python instead of once per cell in the template (the repository page's tags).

Django's template engine costs microseconds per variable, filter and `{% url %}`; a page of 50 tags
had ~1,000 of them, half the page's CPU. The views give such rows ready strings instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from django.urls import reverse
from django.utils import timezone

# What reverse() leaves unquoted (django.urls.resolvers): a value made only of these comes out as it went in.
_URL_SAFE = "!$&'()*+,;=" + "/~:@"


@dataclass(frozen=True)
class Moment:
    """A time as `<time datetime="{{ iso }}">{{ text }}</time>` shows it (the current time zone, as `|date` does)."""

    iso: str
    text: str


def moment(value: datetime | None) -> Moment | None:
    """`value` as the templates' `|date:'c'` and `|date:"Y-m-d H:i"` write it; None stays None."""
    if value is None:
        return None
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return Moment(iso=local.isoformat(), text=local.strftime("%Y-%m-%d %H:%M"))


def reverse_each(viewname: str, args: list[str], values: Iterable[str], *, placeholder: str) -> list[str]:
    """reverse(viewname, args=[*args, value]) for every value, with one reverse(): the placeholder's URL, substituted.

    `placeholder` must match the route's last argument and appear nowhere in the other arguments'
    URL (if it does, every value is reversed on its own); a value that reverse() would quote is too.
    """
    values = list(values)
    template = reverse(viewname, args=[*args, placeholder])
    if template.count(placeholder) != 1:
        return [reverse(viewname, args=[*args, value]) for value in values]
    return [
        template.replace(placeholder, value) if quote(value, safe=_URL_SAFE) == value else reverse(viewname, args=[*args, value])
        for value in values
    ]

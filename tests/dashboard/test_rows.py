"""The table helpers (gateway/dashboard/rows.py, `tag_badges`) write exactly what the template code they replace wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.template import Context, Template
from django.test import override_settings
from django.urls import reverse

from gateway.dashboard.rows import moment, reverse_each
from gateway.dashboard.templatetags.wharf import tag_badges

DIGESTS = ["sha256:" + "a" * 64, "sha256:" + "0123456789abcdef" * 4]


@pytest.mark.parametrize(
    ("viewname", "args", "values", "placeholder"),
    [
        ("dashboard:repository", ["acme"], ["app", "team/app", "a.b-c_d/e"], "placeholder"),
        ("dashboard:tag_delete", ["acme", "team/app"], ["v1", "V1.0_rc-2", "latest"], "TAG"),
        ("dashboard:manifest", ["acme", "team/app"], DIGESTS, "sha256:" + "0" * 64),
        # The placeholder occurs in another argument: every value is reversed on its own, still right.
        ("dashboard:repository", ["placeholder"], ["app", "placeholder/x"], "placeholder"),
        ("dashboard:manifest", ["acme", "app"], ["sha256:" + "0" * 64, *DIGESTS], "sha256:" + "0" * 64),
    ],
)
def test_reverse_each_is_reverse_for_every_value(viewname, args, values, placeholder):
    assert reverse_each(viewname, args, values, placeholder=placeholder) == [reverse(viewname, args=[*args, v]) for v in values]


def test_a_value_reverse_would_quote_is_reversed_on_its_own():
    # The manifest route takes any <str:digest>; a value with a space or a '?' must come out quoted as reverse() quotes it.
    values = ["sha256:" + "b" * 64, "odd value?x=1#y"]
    got = reverse_each("dashboard:manifest", ["acme", "app"], values, placeholder="sha256:" + "0" * 64)
    assert got == [reverse("dashboard:manifest", args=["acme", "app", v]) for v in values]
    assert "%20" in got[1] and "%3F" in got[1]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns"])
@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 1, 16, 5, 9, 123456, tzinfo=UTC),
        datetime(2026, 7, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=5))),
    ],
)
def test_moment_is_what_the_date_filters_wrote(zone, value):
    with override_settings(TIME_ZONE=zone):
        written = Template("""{{ v|date:'c' }}|{{ v|date:"Y-m-d H:i" }}""").render(Context({"v": value}))
        m = moment(value)
    assert m is not None and f"{m.iso}|{m.text}" == written
    assert moment(None) is None


def test_tag_badges_escape_every_name():
    assert tag_badges([]) == ""
    assert tag_badges(["v1", "<b>&"]) == '<span class="badge tag">v1</span> <span class="badge tag">&lt;b&gt;&amp;</span>'

"""Real-browser tests: Debian's Chromium driven by Playwright against the session's live Wharf (`wharf`).

One browser per session (`browser`); each test gets a fresh context and page (`page`), and every
page it leaves is saved as a screenshot under var/screenshots/<test name>.png. `axe_check(page)`
runs axe-core (npm, tests/browser/node_modules, installed by `make test`) in the page and fails on
any serious or critical violation. `sign_in(page, user)` gives the page a logged-in session cookie
without going through the form (tests of the login form itself use the form).

Never `playwright install`: browser downloads fail on these machines (../shared/docs/environment.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
BLOCKING_IMPACTS = ("serious", "critical")
# Playwright's sync API keeps an asyncio loop on the test's thread; Django refuses ORM calls there
# unless told that the loop is not serving requests (it is not: Playwright only drives the browser).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    """The session's one headless Chromium."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make system-deps` installs Debian's chromium package")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live(wharf, transactional_db):
    """The live server, for a test whose rows must be committed (the server is another process)."""
    return wharf


def _new_context(browser, live, *, phone: bool = False):
    viewport = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 860}
    ctx = browser.new_context(base_url=live.url, viewport=viewport)
    ctx.wharf_url = live.url
    return ctx


@pytest.fixture
def context(browser, live, request) -> Iterator[Any]:
    ctx = _new_context(browser, live)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, request) -> Iterator[Any]:
    """A page in a fresh context; its last state is saved as var/screenshots/<test>.png."""
    pg = watch_console(context.new_page())
    yield pg
    screenshot(pg, request.node.name)


@pytest.fixture
def new_context(browser, live):
    """A factory of further contexts (a second user's browser); closed at the end of the test."""
    made = []

    def make(*, phone: bool = False):
        ctx = _new_context(browser, live, phone=phone)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


def watch_console(pg):
    """Collect the page's console errors as `pg.csp_errors` (read by `csp_violations`); returns the page."""
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.csp_errors = errors
    return pg


def screenshot(page, name: str) -> Path:
    """Save the page (full height) as var/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png")
    if not page.is_closed():
        page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, user) -> None:
    """Give the page's context a session of `user` on the live server (a real session row, committed)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": page.context.wharf_url}])


def axe_check(page, *, context: str | None = None) -> list[dict[str, Any]]:
    """Run axe-core in the page; fail on serious or critical violations, return all of them."""
    if not AXE_JS.exists():
        pytest.fail("axe-core is missing: `make test` installs it (npm ci --prefix tests/browser)")
    # Evaluated over the DevTools protocol, not as a <script> of the page, so the page's CSP does not refuse it.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_JS.read_text() + "\n;true")
    result = page.evaluate("async (ctx) => await axe.run(ctx || document, {resultTypes: ['violations']})", context)
    violations = result["violations"]
    blocking = [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]
    assert not blocking, "axe: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in blocking
    )
    return violations


def csp_violations(page) -> list[str]:
    """Console errors the page logged that are Content-Security-Policy refusals."""
    return [e for e in page.csp_errors if "Content Security Policy" in e]

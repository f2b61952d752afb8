"""The GC page in Chromium against the live server and a real Celery worker: preview → Run now → the panel polls → the report."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from django.test import Client

from gateway.dashboard.templatetags.wharf import exact_bytes
from gateway.registry.models import Blob, Repository
from gateway.registry.services.manifests import manifest_delete
from tests.browser.conftest import axe_check, csp_violations, sign_in
from tests.factories import UserFactory, make_tenant, make_token
from tests.helpers import Reg, basic, celery_worker, sha

GC_QUEUE = "gc"  # the live server sends GC jobs where deploy/run.py's worker listens


@pytest.fixture
def worker(live, redis_client):
    """A real worker on the `gc` queue of the live server's broker (stale messages dropped first); GC grace 0."""
    redis_client.delete(GC_QUEUE)
    log = tempfile.NamedTemporaryFile(prefix="wharf-dash-gc-worker-", suffix=".log", delete=False)  # noqa: SIM115 - read after the worker
    proc = celery_worker(GC_QUEUE, log, GATEWAY_GC_GRACE_SECONDS="0")
    yield Path(log.name)
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    Path(log.name).unlink()


def test_preview_run_now_poll_and_report(page, live, worker):
    slug = "g" + uuid.uuid4().hex[:10]
    owner = UserFactory(username="o" + slug)
    tenant = make_tenant(slug, owner=owner)
    reg = Reg(Client(), basic(owner.username, make_token(owner)), prefix=f"/v2/{slug}")
    reg.push_image("app", "keep", [b"kept-layer" * 30])
    doomed_layer = b"doomed-layer" * 40
    _, doomed_payload = reg.push_image("app", "old", [doomed_layer])  # same config as `keep`: that one stays
    manifest_delete(tenant=tenant, repository=Repository.objects.get(tenant=tenant, name="app"), reference="old", actor="test")
    freed = len(doomed_payload) + len(doomed_layer)

    sign_in(page, owner)
    page.goto(f"/orgs/{slug}/gc/")
    now, later = page.locator("#preview-now"), page.locator("#preview-later")
    # The live server keeps the default grace of 24 hours: nothing is old enough yet, all of it once the grace is over.
    assert now.locator(".freed strong").get_attribute("title") == "0 bytes"
    assert later.locator(".freed strong").get_attribute("title") == exact_bytes(freed)
    assert "1 manifest, 1 blob" in later.inner_text()
    assert csp_violations(page) == []
    axe_check(page)

    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.headers.get("hx-request") == "true" else None)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(f"**/orgs/{slug}/gc/")
    assert "Garbage collection started" in page.locator(".messages").inner_text()
    panel = page.locator('#gc-job[data-state="succeeded"]')
    try:
        panel.wait_for(timeout=90_000)
    except Exception:
        raise AssertionError(f"the run did not finish; worker log:\n{worker.read_text(errors='replace')[-3000:]}") from None
    assert polls and all("/gc/jobs/" in url for url in polls)  # htmx polled the panel, the page never reloaded
    assert panel.locator(".bytes-freed strong").get_attribute("title") == exact_bytes(freed)
    report = panel.locator("table.job-counts").inner_text()
    assert "Manifests deleted\t1" in report and "Blobs deleted\t1" in report
    assert "No errors." in panel.inner_text() and panel.locator(".duration").inner_text().endswith(" s")
    assert not Blob.objects.filter(tenant=tenant, digest=sha(doomed_layer)).exists()
    assert csp_violations(page) == []
    axe_check(page)
    page.get_by_role("link", name="Refresh the preview").click()
    assert page.locator("#preview-later .freed strong").get_attribute("title") == "0 bytes"
    assert page.locator("table.runs tbody tr").count() == 1
    axe_check(page)

import pytest

pytestmark = pytest.mark.django_db


def test_push_and_pull_an_image(reg):
    digest, payload = reg.push_image("app", "1", [b"layer-one", b"layer-two"])
    r = reg.get("/v2/acme/app/manifests/1", HTTP_ACCEPT="application/vnd.oci.image.manifest.v1+json")
    assert r.status_code == 200
    assert r.content == payload
    assert r["Docker-Content-Digest"] == digest
    r = reg.get("/v2/acme/app/tags/list")
    assert r.json() == {"name": "acme/app", "tags": ["1"]}

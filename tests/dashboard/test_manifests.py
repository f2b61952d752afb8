"""The manifest page: /orgs/<slug>/repositories/<name>/manifests/<digest>/ — access, an index's tree, layers' sharing, config, queries.

Images are pushed for real through /v2/ (tests/helpers.py Reg) into acme's SeaweedFS bucket.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gateway.dashboard.templatetags.wharf import binary_bytes, exact_bytes
from tests.dashboard.conftest import CALLERS, ROLES, assert_denied
from tests.dashboard.images import config, push_image_by_digest, push_index, push_index_with_referrers
from tests.factories import make_token
from tests.helpers import sha

pytestmark = pytest.mark.django_db


def url(name: str, digest: str, slug: str = "acme") -> str:
    return f"/orgs/{slug}/repositories/{name}/manifests/{digest}/"


class Tree(HTMLParser):
    """The page's `li.node` elements as nested (class, text, children) triples; `rows` the layers table's cells by digest."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[dict] = []
        self.stack: list[dict] = []
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "li" and "node" in (a.get("class") or ""):
            node = {"class": a["class"].split()[1], "text": "", "children": []}
            (self.stack[-1]["children"] if self.stack else self.roots).append(node)
            self.stack.append(node)
        if tag == "tr" and a.get("data-digest"):
            self._row = a["data-digest"]
            self.rows[self._row] = []
        if tag == "td" and self._row:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "li" and self.stack:
            self.stack.pop()
        if tag == "td" and self._cell is not None and self._row:
            self.rows[self._row].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self.stack:
            self.stack[-1]["text"] += data
        if self._cell is not None:
            self._cell.append(data)


def parse(response) -> Tree:
    tree = Tree()
    tree.feed(response.content.decode())
    return tree


@pytest.fixture
def image(reg):
    """team/app:v1 with a layer shared with `other` and `third`, one shared with `other` only, and one of its own."""
    cfg = config(
        "amd64",
        labels={"org.opencontainers.image.source": "https://example.com/app"},
        Entrypoint=["/app"],
        Cmd=["serve", "--port=80"],
    )
    digest, _ = reg.push_image("team/app", "v1", [b"base" * 100, b"middle" * 50, b"own" * 30], cfg)
    reg.push_image("other", "v1", [b"base" * 100, b"middle" * 50])
    reg.push_image("third", "v1", [b"base" * 100])
    return digest, cfg


@pytest.mark.parametrize("caller", CALLERS)
def test_access(as_caller, caller, image):
    response = as_caller(caller).get(url("team/app", image[0]))
    if caller in ROLES:
        assert response.status_code == 200, response.status_code
        assert image[0].encode() in response.content
    else:
        assert_denied(response, caller)


@pytest.mark.parametrize(
    "path",
    [
        url("team/app", "sha256:" + "0" * 64),  # no such manifest
        url("nope", "sha256:" + "0" * 64),  # no such repository
        url("team/app", "v1"),  # a tag is not a digest
        url("team/app", "sha256:nothex"),
        url("team/app", "sha256:" + "0" * 63 + "%00"),
        url("Team/App", "sha256:" + "0" * 64),  # not a repository name
    ],
)
def test_unknown_or_malformed_references_are_404(as_caller, image, path):
    assert as_caller("reader").get(path).status_code == 404


def test_a_member_of_another_organisation_gets_404_even_for_a_digest_that_exists_in_theirs(as_caller, image):
    assert as_caller("other").get(url("team/app", image[0], slug="globex")).status_code == 404  # no such repository there
    assert as_caller("other").get(url("team/app", image[0])).status_code == 404


def test_image_layers_shared_counts_unique_bytes_and_config(as_caller, image):
    digest, cfg = image
    response = as_caller("reader").get(url("team/app", digest))
    assert response.status_code == 200
    rows = parse(response).rows
    base, middle, own = sha(b"base" * 100), sha(b"middle" * 50), sha(b"own" * 30)
    assert list(rows) == [base, middle, own]  # in the manifest's order
    assert rows[base][3] == "with 2 other repositories"
    assert rows[middle][3] == "with 1 other repository"
    assert rows[own][3] == "this repository only"
    assert rows[own][2] == binary_bytes(90) == "90 bytes"
    assert rows[base][2] == binary_bytes(400) == "400 bytes"
    m = response.context["m"]
    # Unique: the config and the own layer; the shared layers are kept by the other images.
    assert m["unique_bytes"] == len(cfg) + 90 and m["stored_bytes"] == len(cfg) + 400 + 300 + 90
    assert m["shared_layers"] == 2 and m["kept_by"] == "tag"
    html = response.content.decode()
    assert f'title="{exact_bytes(len(cfg) + 90)}"' in html
    assert "/app" in html and "serve --port=80" in html and "https://example.com/app" in html and "linux/amd64" in html
    assert f"docker pull {settings.REGISTRY_DOMAIN}/acme/team/app@{digest}</pre>" in html
    assert 'data-copy="#pull-line"' in html
    assert "/orgs/acme/repositories/team/app/" in html  # back to the repository


def test_a_layer_used_twice_in_one_repository_is_not_unique_but_not_shared_with_another_repository(as_caller, reg):
    digest, _ = reg.push_image("solo", "v1", [b"common" * 10, b"first" * 10])
    reg.push_image("solo", "v2", [b"common" * 10, b"second" * 10])
    m = as_caller("reader").get(url("solo", digest)).context["m"]
    common = next(layer for layer in m["layers"] if layer["digest"] == sha(b"common" * 10))
    assert common["other_repositories"] == 0 and m["shared_layers"] == 0
    assert m["unique_bytes"] == len(b"first" * 10)  # the common layer and the (identical) config stay with v2


def test_a_multi_platform_index_with_referrers_renders_its_tree(as_caller, reg):
    index = push_index_with_referrers(reg, "team/multi", "1.0", arches=("amd64", "arm64"))
    response = as_caller("reader").get(url("team/multi", index.digest))
    assert response.status_code == 200
    roots = parse(response).roots
    assert len(roots) == 1 and roots[0]["class"] == "index" and index.digest[:19] in roots[0]["text"]
    kids = roots[0]["children"]
    sbom = index.referrers[index.digest][0]
    assert kids[0]["class"] == "referrer" and sbom[0] in kids[0]["text"] and sbom[1][:19] in kids[0]["text"]
    platforms = [k for k in kids if k["class"] == "platform"]
    assert [p["text"].split()[0] for p in platforms] == ["linux/amd64", "linux/arm64/v8"]
    amd, arm = index.platforms
    assert amd.digest[:19] in platforms[0]["text"] and binary_bytes(amd.image_bytes) in platforms[0]["text"]
    assert arm.digest[:19] in platforms[1]["text"] and binary_bytes(arm.image_bytes) in platforms[1]["text"]
    sig_type, sig = index.referrers[amd.digest][0]
    assert [(c["class"], sig_type in c["text"], sig[:19] in c["text"]) for c in platforms[0]["children"]] == [
        ("referrer", True, True)
    ]
    assert platforms[1]["children"] == []
    html = response.content.decode()
    assert f'href="/orgs/acme/repositories/team/multi/manifests/{amd.digest}/"' in html
    m = response.context["m"]
    assert m["kind"] == "index" and m["stored_bytes"] == amd.image_bytes + arm.image_bytes
    assert m["unique_bytes"] == m["stored_bytes"]  # nothing else uses these layers


def test_an_untagged_platform_of_a_tagged_index_is_part_of_it_not_garbage(as_caller, reg):
    index = push_index(reg, "team/multi", "1.0")
    child = index.platforms[1].digest
    response = as_caller("reader").get(url("team/multi", child))
    m = response.context["m"]
    assert m["tags"] == [] and m["kept_by"] == "index"
    assert m["holders"] == [{"digest": index.digest, "media_type": "application/vnd.oci.image.index.v1+json", "tags": ["1.0"]}]
    html = response.content.decode()
    assert 'data-kept-by="index"' in html and "not garbage" in html and "(1.0)" in html
    assert "garbage collection removes it" not in html


def test_a_referrer_is_kept_by_its_subject_and_a_lone_untagged_image_by_nothing(as_caller, reg):
    index = push_index_with_referrers(reg, "team/multi", "1.0")
    sbom = index.referrers[index.digest][0][1]
    m = as_caller("reader").get(url("team/multi", sbom)).context["m"]
    assert m["kept_by"] == "subject" and m["subject"] == index.digest and m["kind"] == "artifact"
    lone, _ = push_image_by_digest(reg, "team/multi", [b"lonely-layer"], config("amd64"))
    response = as_caller("reader").get(url("team/multi", lone))
    assert response.context["m"]["kept_by"] == "" and 'data-kept-by="nothing"' in response.content.decode()


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx.captured_queries)


def test_queries_do_not_grow_with_layers(as_caller, reg, django_assert_max_num_queries):
    client = as_caller("reader")
    small, _ = reg.push_image("few", "v1", [f"few-{i}".encode() for i in range(2)])
    big, _ = reg.push_image("many", "v1", [f"many-{i}".encode() for i in range(20)])
    for i in range(0, 20, 2):  # half of them shared, each with its own repository
        reg.push_image(f"sharer-{i}", "v1", [f"many-{i}".encode()])
    _queries(client, url("few", small))  # warm the session
    with django_assert_max_num_queries(_queries(client, url("few", small))):
        response = client.get(url("many", big))
    assert len(response.context["m"]["layers"]) == 20 and response.context["m"]["shared_layers"] == 10


def test_queries_do_not_grow_with_platforms_and_referrers(as_caller, reg, django_assert_max_num_queries):
    client = as_caller("reader")
    small = push_index_with_referrers(reg, "few", "1", arches=("amd64", "arm64"))
    many = ("amd64", "arm64", "386", "ppc64le", "s390x", "riscv64", "mips64le", "arm", "loong64", "wasm")
    big = push_index(reg, "many", "1", arches=many, layers_per_platform=2)
    _queries(client, url("few", small.digest))
    with django_assert_max_num_queries(_queries(client, url("few", small.digest))):
        response = client.get(url("many", big.digest))
    assert len(response.context["m"]["children"]) == len(many)


def test_the_api_detail_reads_the_same_selector_and_keeps_its_shape(reg, users):
    """The admin API's manifest GET (moved to manifest_selectors) still answers exactly its documented fields."""
    digest, _ = reg.push_image("team/app", "v1", [b"x"], config("arm64", Entrypoint=["/e"]))
    token = make_token(users["reader"], scopes=["api:read"])
    body = (
        Client()
        .get(f"/api/v1/tenants/acme/repositories/team/app/-/manifests/{digest}", HTTP_AUTHORIZATION=f"Bearer {token}")
        .json()
    )
    assert set(body["config"]) == {"media_type", "digest", "size", "os", "architecture", "variant", "created", "labels"}
    assert "id" not in body and "kind" not in body and body["config"]["architecture"] == "arm64"

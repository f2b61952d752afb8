"""The S3 blob store against a real SeaweedFS, and the Storj guard that keeps it honest."""

import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from gateway.storage import StorageUnavailable, keys
from gateway.storage.s3 import S3BlobStore, S3Config
from gateway.storage.storj_guard import StorjIncompatible, check_request

MiB = 1024 * 1024


def test_put_stat_read_range_delete(blob_store):
    blob_store.put("t/1/test/a", b"hello world")
    st = blob_store.stat("t/1/test/a")
    assert st.size == 11
    assert b"".join(blob_store.open_read("t/1/test/a")) == b"hello world"
    assert b"".join(blob_store.open_read("t/1/test/a", start=6, end=10)) == b"world"
    blob_store.delete(["t/1/test/a", "t/1/test/does-not-exist"])  # a missing key counts as deleted
    assert blob_store.stat("t/1/test/a") is None


def test_put_if_absent_does_not_overwrite(blob_store):
    blob_store.put("t/1/test/once", b"first", if_absent=True)
    blob_store.put("t/1/test/once", b"second", if_absent=True)
    assert blob_store.read_small("t/1/test/once") == b"first"


def test_multipart_round_trip_and_abort(blob_store):
    key = "t/1/test/mp"
    mp = blob_store.multipart_start(key)
    a, b = os.urandom(5 * MiB), os.urandom(1000)
    parts = [(1, blob_store.multipart_put_part(key, mp, 1, bytearray(a))), (2, blob_store.multipart_put_part(key, mp, 2, b))]
    blob_store.multipart_complete(key, mp, parts)
    assert b"".join(blob_store.open_read(key)) == a + b
    mp2 = blob_store.multipart_start("t/1/test/mp2")
    assert any(u.upload_id == mp2 for u in blob_store.list_multipart("t/1/test/"))
    blob_store.multipart_abort("t/1/test/mp2", mp2)
    blob_store.multipart_abort("t/1/test/mp2", mp2)  # twice is fine
    assert not any(u.upload_id == mp2 for u in blob_store.list_multipart("t/1/test/"))


def test_list_pages_and_requires_slash_prefixes(blob_store):
    for i in range(5):
        blob_store.put(f"t/2/list/{i}", b"x")
    assert sorted(o.key for o in blob_store.list("t/2/list/")) == [f"t/2/list/{i}" for i in range(5)]
    with pytest.raises(ValueError, match="end with '/'"):
        list(blob_store.list("t/2/li"))
    blob_store.delete([f"t/2/list/{i}" for i in range(5)])


def test_presigned_get(blob_store):
    import requests

    blob_store.put("t/1/test/p", b"presigned")
    url = blob_store.presign_get("t/1/test/p", expires=60)
    assert requests.get(url, timeout=10).content == b"presigned"
    tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    assert requests.get(tampered, timeout=10).status_code == 403  # SeaweedFS checks signatures


def test_unreachable_store_is_storage_unavailable():
    store = S3BlobStore(S3Config(endpoint_url="http://127.0.0.1:1", access_key="a", secret_key="b", bucket="x"))
    store._boto_config = store._boto_config.merge(
        __import__("botocore.config").config.Config(retries={"max_attempts": 1}, connect_timeout=1)
    )
    with pytest.raises(StorageUnavailable):
        store.stat("t/1/x")


def test_config_rejects_unknown_options_and_bad_part_sizes():
    with pytest.raises(ImproperlyConfigured, match="unknown storage options: colour"):
        S3Config.from_settings({"endpoint_url": "http://x", "access_key": "", "secret_key": "", "bucket": "b", "colour": "red"})
    with pytest.raises(ImproperlyConfigured, match="part_size"):
        S3Config(endpoint_url="http://x", access_key="", secret_key="", bucket="b", part_size=1024)


def test_default_part_size_is_one_storj_segment(settings):
    assert settings.GATEWAY_S3["part_size"] == 64 * MiB


def test_keys_are_storj_safe():
    import uuid

    assert keys.upload_key(7, uuid.UUID(int=1)) == "t/7/uploads/00000000000000000000000000000001"
    assert keys.tag_key(7, "team/app", "V1.0").endswith("/_tags/" + b"V1.0".hex())
    with pytest.raises(ValueError):
        keys.manifest_key(7, "Bad Name", "sha256:" + "a" * 64)


# --- the guard ------------------------------------------------------------------


def test_guard_catches_what_storj_refuses(blob_store):
    client = blob_store.client
    # What boto3 ≥ 1.36 sends for DeleteObjects on its own (our before-sign hook fixes it).
    with pytest.raises(StorjIncompatible, match="checksum"):
        check_request("DeleteObjects", "POST", "http://s3/b?delete", {"x-amz-checksum-crc32": "abc"})
    with pytest.raises(StorjIncompatible, match="Content-MD5"):
        check_request("DeleteObjects", "POST", "http://s3/b?delete", {"Content-Type": "application/xml"})
    with pytest.raises(StorjIncompatible, match="UploadPartCopy"):
        client.upload_part_copy(
            Bucket=blob_store.bucket,
            Key="t/1/x",
            UploadId="u",
            PartNumber=1,
            CopySource={"Bucket": blob_store.bucket, "Key": "t/1/y"},
        )
    with pytest.raises(StorjIncompatible, match="prefix"):
        client.list_objects_v2(Bucket=blob_store.bucket, Prefix="t/1/unfinished")
    with pytest.raises(StorjIncompatible, match="If-Match"):
        client.put_object(Bucket=blob_store.bucket, Key="t/1/z", Body=b"x", IfMatch='"abc"')
    with pytest.raises(StorjIncompatible, match="checksum"):
        client.put_object(Bucket=blob_store.bucket, Key="t/1/z", Body=b"x", ChecksumAlgorithm="CRC32")


def test_guard_passes_what_storj_accepts(blob_store):
    # Our own calls (DeleteObjects with Content-MD5, If-None-Match: *, slash prefixes) go through.
    blob_store.put("t/1/guard/a", b"x", if_absent=True)
    list(blob_store.list("t/1/guard/"))
    blob_store.delete(["t/1/guard/a"])

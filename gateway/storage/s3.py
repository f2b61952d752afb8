"""The S3 blob store over boto3, configured for Storj's gateway (docs/storj.md).

- SigV4, path-style, checksums only "when required" (Storj's gateway rejects boto3's
  default CRC32 / aws-chunked trailers), standard retries (retries 429 SlowDown).
- DeleteObjects carries Content-MD5 and no x-amz-checksum-* headers (Storj requires it).
- Never UploadPartCopy, never ListMultipartUploads/ListObjects on a prefix without a
  trailing "/", never a conditional write other than `If-None-Match: *`.
- One boto3 client per thread (clients are not safe to share across threads for all uses).
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from django.core.exceptions import ImproperlyConfigured

from gateway.storage.base import MIN_PART_SIZE, ObjectStat, PendingUpload, StorageError, StorageUnavailable

MAX_PARTS = 10_000
_OPTIONS = {
    "endpoint_url",
    "access_key",
    "secret_key",
    "bucket",
    "region",
    "addressing_style",
    "part_size",
    "max_pool",
    "storj_guard",
}
_UNAVAILABLE_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500", "429"}


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-1"
    addressing_style: str = "path"
    part_size: int = 64 * 1024 * 1024
    max_pool: int = 32
    storj_guard: bool = False

    def __post_init__(self) -> None:
        if self.addressing_style not in ("path", "virtual"):
            raise ImproperlyConfigured(f"S3 addressing_style must be 'path' or 'virtual', got {self.addressing_style!r}")
        if not MIN_PART_SIZE <= self.part_size <= 5 * 1024**3:
            raise ImproperlyConfigured(f"S3 part_size must be between 5 MiB and 5 GiB, got {self.part_size}")
        if not self.bucket:
            raise ImproperlyConfigured("S3 bucket must be set")

    @classmethod
    def from_settings(cls, options: Mapping[str, Any]) -> S3Config:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ImproperlyConfigured(f"unknown storage options: {', '.join(sorted(unknown))}")
        return cls(**options)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Config:
        return cls(
            endpoint_url=env["AWS_S3_ENDPOINT_URL"],
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            bucket=env["AWS_STORAGE_BUCKET_NAME"],
            region=env.get("AWS_S3_REGION_NAME", "us-1"),
            addressing_style=env.get("AWS_S3_ADDRESSING_STYLE", "path"),
        )

    def identity(self) -> tuple:
        return tuple(sorted(asdict(self).items()))


def _delete_objects_md5(request: Any, **_: Any) -> None:
    """Storj requires Content-MD5 on DeleteObjects and refuses x-amz-checksum-* headers."""
    for name in list(request.headers.keys()):
        lname = name.lower()
        if lname.startswith("x-amz-checksum-") or lname == "x-amz-sdk-checksum-algorithm":
            del request.headers[name]
    body: Any = request.body or b""
    if hasattr(body, "read"):
        pos = body.tell()
        data = body.read()
        body.seek(pos)
    else:
        data = body if isinstance(body, bytes) else str(body).encode()
    request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()


class S3BlobStore:
    """BlobStore over the S3 API (Storj gateway in production, SeaweedFS in tests)."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.bucket = config.bucket
        self.part_size = config.part_size
        self._local = threading.local()
        self._session = boto3.session.Session()
        self._boto_config = botocore.config.Config(
            signature_version="s3v4",
            s3={"addressing_style": config.addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 8},
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=config.max_pool,
            tcp_keepalive=True,
        )

    @property
    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            with _CLIENT_CREATE_LOCK:  # boto3 session client creation is not thread-safe
                client = self._session.client(
                    "s3",
                    endpoint_url=self.config.endpoint_url,
                    region_name=self.config.region,
                    aws_access_key_id=self.config.access_key or None,
                    aws_secret_access_key=self.config.secret_key or None,
                    config=self._boto_config,
                )
            client.meta.events.register("before-sign.s3.DeleteObjects", _delete_objects_md5)
            if self.config.storj_guard:
                from gateway.storage.storj_guard import install

                install(client)
            self._local.client = client
        return client

    # -- reads ---------------------------------------------------------------

    def stat(self, key: str) -> ObjectStat | None:
        """HEAD: the object's size and ETag, or None when it does not exist."""
        try:
            r = self._call("head_object", Bucket=self.bucket, Key=key)
        except _Missing:
            return None
        return ObjectStat(
            key=key, size=int(r["ContentLength"]), etag=r.get("ETag", "").strip('"'), last_modified=r.get("LastModified")
        )

    def open_read(self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream bytes [start, end] (inclusive) of an object in chunks; nothing held whole."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        body = self._call("get_object", **args)["Body"]
        return _iter_body(body, chunk_size)

    def read_small(self, key: str) -> bytes:
        """The whole of a small object (index objects, manifests)."""
        return b"".join(self.open_read(key))

    def presign_get(self, key: str, *, expires: int, content_type: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ResponseContentType"] = content_type
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires))

    def list(self, prefix: str) -> Iterator[ObjectStat]:
        """Every object under a `/`-terminated prefix, in no particular order."""
        if not prefix.endswith("/"):
            raise ValueError("list prefixes must end with '/' (Storj lists other prefixes exhaustively or not at all)")
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
            if token:
                args["ContinuationToken"] = token
            r = self._call("list_objects_v2", **args)
            for o in r.get("Contents", []):
                yield ObjectStat(
                    key=o["Key"], size=int(o["Size"]), etag=o.get("ETag", "").strip('"'), last_modified=o.get("LastModified")
                )
            if not r.get("IsTruncated"):
                return
            token = r.get("NextContinuationToken")

    def list_multipart(self, prefix: str) -> Iterator[PendingUpload]:
        """Pending multipart uploads under a `/`-terminated prefix (for the orphan sweep)."""
        if not prefix.endswith("/"):
            raise ValueError("multipart listing prefixes must end with '/'")
        key_marker: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if key_marker:
                args["KeyMarker"] = key_marker
            r = self._call("list_multipart_uploads", **args)
            uploads = r.get("Uploads", [])
            for u in uploads:
                yield PendingUpload(key=u["Key"], upload_id=u["UploadId"], initiated=u.get("Initiated"))
            if not r.get("IsTruncated") or not uploads:
                return
            key_marker = r.get("NextKeyMarker") or uploads[-1]["Key"]

    # -- writes --------------------------------------------------------------

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream", if_absent: bool = False) -> str:
        """PutObject with Content-MD5 (Storj verifies it); `if_absent` sends If-None-Match: *."""
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
            "ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
        }
        if if_absent:
            args["IfNoneMatch"] = "*"
        try:
            r = self._call("put_object", **args)
        except _PreconditionFailed:
            return ""
        return str(r.get("ETag", "")).strip('"')

    def put_json(self, key: str, doc: dict[str, Any], *, if_absent: bool = False) -> str:
        """A small JSON object (index and tag objects), in the one encoding every writer and copier shares."""
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return self.put(key, data, content_type="application/json", if_absent=if_absent)

    def delete(self, keys: builtins.list[str]) -> None:
        """Delete keys in batches of 1000; a key that does not exist counts as deleted."""
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            r = self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = [e for e in r.get("Errors", []) if e.get("Code") not in ("NoSuchKey",)]
            if errors:
                raise StorageError(f"delete failed for {len(errors)} objects, first: {errors[0]}")

    def multipart_start(self, key: str) -> str:
        return str(
            self._call("create_multipart_upload", Bucket=self.bucket, Key=key, ContentType="application/octet-stream")["UploadId"]
        )

    def multipart_put_part(self, key: str, upload_id: str, part_number: int, data: bytes | bytearray | memoryview) -> str:
        if not 1 <= part_number <= MAX_PARTS:
            raise StorageError(f"part number {part_number} outside 1..{MAX_PARTS}")
        body = bytes(data) if isinstance(data, memoryview) else data
        r = self._call(
            "upload_part",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=part_number,
            Body=body,
            ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),
        )
        return str(r["ETag"]).strip('"')

    def multipart_complete(self, key: str, upload_id: str, parts: builtins.list[tuple[int, str]]) -> None:
        self._call(
            "complete_multipart_upload",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in sorted(parts)]},
        )

    def multipart_abort(self, key: str, upload_id: str) -> None:
        try:
            self._call("abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id)
        except _Missing:
            pass

    # -- bucket --------------------------------------------------------------

    def check(self) -> None:
        """Raise StorageUnavailable unless the bucket answers."""
        try:
            self._call("head_bucket", Bucket=self.bucket)
        except _Missing:
            raise StorageUnavailable(f"bucket {self.bucket!r} does not exist") from None

    def bucket_ensure(self) -> None:
        """Create the bucket if it does not exist (idempotent)."""
        try:
            self._call("head_bucket", Bucket=self.bucket)
            return
        except _Missing:
            pass
        try:
            self._call("create_bucket", Bucket=self.bucket)
        except StorageError as exc:
            if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                raise

    # -- plumbing ------------------------------------------------------------

    def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, op)(**kwargs)
        except botocore.exceptions.ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in ("NoSuchKey", "NoSuchBucket", "NoSuchUpload", "404", "NotFound") or status == 404:
                raise _Missing(code) from None
            if code in ("PreconditionFailed", "412") or status == 412:
                raise _PreconditionFailed(code) from None
            if code in _UNAVAILABLE_CODES or status >= 500 or status == 429:
                raise StorageUnavailable(f"S3 {op} failed: {code or status}") from exc
            raise StorageError(f"S3 {op} failed: {code} {err.get('Message', '')}".strip()) from exc
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectTimeoutError,
        ) as exc:
            raise StorageUnavailable(f"S3 {op} failed: {exc}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageUnavailable(f"S3 {op} failed: {exc}") from exc


_CLIENT_CREATE_LOCK = threading.Lock()


class _Missing(StorageError):
    pass


class _PreconditionFailed(StorageError):
    pass


def _iter_body(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        while True:
            try:
                chunk = body.read(chunk_size)
            except (botocore.exceptions.BotoCoreError, OSError) as exc:
                raise StorageUnavailable(f"S3 read failed: {exc}") from exc
            if not chunk:
                return
            yield chunk
    finally:
        body.close()

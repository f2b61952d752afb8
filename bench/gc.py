#!/usr/bin/env python
"""GC at scale: N blobs of which 10 % are garbage; time and database queries per blob, at two sizes.

    .venv/bin/python bench/gc.py [--sizes 10000,100000] [--garbage 0.1] [--batch-size 500] [--json PATH]

Starts its own SeaweedFS (S3 with credentials, the Storj guard on, so every DeleteObjects is one
Storj would accept) and a fresh PostgreSQL database (the machine's on 127.0.0.1:5432, else an
embedded one), and removes both at the end, also on Ctrl-C.

Per size N it builds one tenant the way pushes leave it: N/10 images of one config + 9 layers
(Blob, RepositoryBlob, Manifest, ManifestBlob rows, inserted in bulk); 90 % of the images tagged,
10 % untagged, so 10 % of the blobs and manifests are garbage. The garbage's bucket objects
(blob bytes, index objects, manifest bytes) really exist in SeaweedFS; the live blobs' bytes are
not written, because GC never reads or touches them. Then one `gc_run_to_completion` with grace 0
(the code the task chain runs), timed, with every SQL statement counted. It checks the result
(exactly the garbage rows gone, a sample of their objects gone, nothing left to drain) and
prints time and queries per blob, the mark phase's statement count (constant: no query per row),
and how time and queries per blob change from the smallest to the largest size (1.00 = linear).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import embedded  # noqa: E402  (after the sys.path insert above)

LAYERS_PER_IMAGE = 9  # + 1 config = 10 blobs per image


def log(msg: str) -> None:
    print(f"[bench-gc] {msg}", flush=True)


class World:
    """SeaweedFS + a fresh database, and everything needed to take them down again."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="wharf-bench-gc-"))
        self.cleanups: list[tuple[str, Any]] = []
        self.env: dict[str, str] = {}

    def start(self) -> None:
        log("starting SeaweedFS")
        data_dir = self.work / "s3"
        try:
            s3 = embedded.start_seaweedfs(data_dir, secret_key=secrets.token_hex(20), bucket="wharf-bench-gc")
        except BaseException:
            shutil.rmtree(self.work, ignore_errors=True)
            raise
        self.cleanups.append(("SeaweedFS", s3.stop))
        self.env.update(s3.env)
        if embedded.port_open("127.0.0.1", 5432):
            import psycopg

            name = f"wharf_bench_gc_{os.getpid()}"
            admin = "postgresql://postgres@127.0.0.1:5432/postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')

            def drop() -> None:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

            self.cleanups.append((f"database {name}", drop))
            self.env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
            log(f"PostgreSQL: the machine's, fresh database {name}")
        else:
            log("PostgreSQL: none on 127.0.0.1:5432, starting an embedded one")
            pg = embedded.start_postgres(self.work / "postgres", database="wharf_bench_gc")
            self.cleanups.append(("embedded PostgreSQL", pg.stop))
            self.env["DATABASE_URL"] = pg.env["DATABASE_URL"]

    def close(self) -> None:
        from django.db import connections

        connections.close_all()
        for what, fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - keep cleaning up the rest
                log(f"could not stop {what}: {exc}")
        shutil.rmtree(self.work, ignore_errors=True)


def configure(world: World, batch_size: int) -> None:
    os.environ.update(world.env)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="gateway.settings.test",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        GATEWAY_VAR_DIR=str(world.work / "var"),
        GATEWAY_TOKEN_KEYS_DIR=str(world.work / "var" / "token-keys"),
        # GC never talks to Redis; settings want a URL.
        REDIS_URL=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15",
        GATEWAY_S3_STORJ_GUARD="true",
        GATEWAY_GC_GRACE_SECONDS="0",
        GATEWAY_GC_BATCH_SIZE=str(batch_size),
        GATEWAY_GC_MAX_BATCHES="100000",
        GATEWAY_LOG_LEVEL="warning",
    )
    import django

    django.setup()
    from django.core.management import call_command

    log("migrating the fresh database")
    call_command("migrate", verbosity=0)


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def build(size: int, garbage_share: float) -> dict[str, Any]:
    """One tenant with `size` blobs in images of 10; the first `garbage_share` of the images untagged."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import Tenant
    from gateway.registry.models import Blob, Manifest, ManifestBlob, Repository, RepositoryBlob, Tag
    from gateway.storage import keys

    started = time.monotonic()
    tenant = Tenant.objects.create(slug=f"gc-{size}-{uuid.uuid4().hex[:6]}")
    repo = Repository.objects.create(tenant=tenant, name="bench/app")
    images = size // (LAYERS_PER_IMAGE + 1)
    garbage_images = int(images * garbage_share)
    blobs: list[Blob] = []
    for i in range(images * (LAYERS_PER_IMAGE + 1)):
        blobs.append(
            Blob(
                tenant=tenant,
                digest=_digest(f"{tenant.slug}/blob/{i}"),
                size=1024 + i % 4096,
                storage_key=keys.upload_key(tenant.pk, uuid.uuid4()),
            )
        )
    with transaction.atomic():
        Blob.objects.bulk_create(blobs, batch_size=5000)
        RepositoryBlob.objects.bulk_create(
            [RepositoryBlob(tenant=tenant, repository=repo, blob=b) for b in blobs], batch_size=5000
        )
        manifests = []
        for m in range(images):
            refs = blobs[m * 10 : m * 10 + 10]
            payload = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": refs[0].digest,
                        "size": refs[0].size,
                    },
                    "layers": [
                        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": b.digest, "size": b.size}
                        for b in refs[1:]
                    ],
                }
            ).encode()
            manifests.append(
                Manifest(
                    tenant=tenant,
                    repository=repo,
                    digest="sha256:" + hashlib.sha256(payload).hexdigest(),
                    media_type="application/vnd.oci.image.manifest.v1+json",
                    size=len(payload),
                    payload=payload,
                )
            )
        Manifest.objects.bulk_create(manifests, batch_size=2000)
        ManifestBlob.objects.bulk_create(
            [ManifestBlob(manifest=m, blob=b) for i, m in enumerate(manifests) for b in blobs[i * 10 : i * 10 + 10]],
            batch_size=5000,
        )
        now = timezone.now()
        Tag.objects.bulk_create(
            [
                Tag(tenant=tenant, repository=repo, name=f"t{i}", manifest=m, last_pushed_at=now)
                for i, m in enumerate(manifests)
                if i >= garbage_images
            ],
            batch_size=5000,
        )
    garbage_blobs = blobs[: garbage_images * 10]
    garbage_manifests = manifests[:garbage_images]
    rows_seconds = time.monotonic() - started
    return {
        "tenant": tenant,
        "blobs": len(blobs),
        "images": images,
        "garbage_blobs": garbage_blobs,
        "garbage_manifests": garbage_manifests,
        "rows_seconds": rows_seconds,
    }


def write_garbage_objects(world: dict[str, Any]) -> tuple[list[str], float]:
    """The bucket objects GC must delete: blob bytes and index objects of garbage blobs, garbage manifests' bytes."""
    from gateway.storage import get_blob_store, keys

    store = get_blob_store()
    tenant = world["tenant"]
    jobs: list[tuple[str, bytes]] = []
    for b in world["garbage_blobs"]:
        jobs.append((b.storage_key, os.urandom(64)))
        jobs.append(
            (
                keys.blob_index_key(tenant.pk, b.digest),
                json.dumps({"digest": b.digest, "size": b.size, "key": b.storage_key}).encode(),
            )
        )
    for m in world["garbage_manifests"]:
        jobs.append((keys.manifest_key(tenant.pk, "bench/app", m.digest), bytes(m.payload)))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda kv: store.put(kv[0], kv[1]), jobs))
    return [k for k, _ in jobs], time.monotonic() - started


class QueryCounter:
    """A connection.execute_wrapper that counts statements, and those of the mark phase (they use its temp table)."""

    def __init__(self) -> None:
        self.total = 0
        self.mark = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.total += 1
        if "gc_live_" in sql:
            self.mark += 1
        return execute(sql, params, many, context)


def measure(size: int, garbage_share: float) -> dict[str, Any]:
    from django.db import connection

    from gateway.registry.models import Blob, Manifest, ObjectDeletion
    from gateway.registry.services.gc import gc_run_to_completion
    from gateway.storage import get_blob_store

    log(f"{size:,} blobs: inserting rows")
    world = build(size, garbage_share)
    log(
        f"{size:,} blobs: rows in {world['rows_seconds']:.1f}s; writing {len(world['garbage_blobs']) * 2 + len(world['garbage_manifests']):,} garbage objects"
    )
    object_keys, put_seconds = write_garbage_objects(world)
    tenant = world["tenant"]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have by now
    log(f"{size:,} blobs: objects in {put_seconds:.1f}s; running GC")
    counter = QueryCounter()
    started = time.monotonic()
    with connection.execute_wrapper(counter):
        report = gc_run_to_completion(tenant=tenant)
    seconds = time.monotonic() - started
    assert report is not None and report.done, report

    # The result: exactly the garbage gone, everything else there, nothing left to drain.
    garbage_ids = {b.pk for b in world["garbage_blobs"]}
    left = set(Blob.objects.filter(tenant=tenant).values_list("pk", flat=True))
    assert not (left & garbage_ids) and len(left) == world["blobs"] - len(garbage_ids), "GC deleted the wrong blobs"
    assert Manifest.objects.filter(tenant=tenant).count() == world["images"] - len(world["garbage_manifests"])
    assert not ObjectDeletion.objects.filter(tenant=tenant).exists()
    store = get_blob_store()
    sample = object_keys[:: max(1, len(object_keys) // 200)]
    assert all(store.stat(k) is None for k in sample), "garbage objects left in the bucket"
    deleted_blobs = report.counts.get("blobs_deleted", 0)
    return {
        "blobs": world["blobs"],
        "garbage_blobs": len(garbage_ids),
        "garbage_manifests": len(world["garbage_manifests"]),
        "seconds": round(seconds, 3),
        "phase_seconds": report.seconds,
        "queries": counter.total,
        "mark_queries": counter.mark,
        "us_per_blob": round(seconds / world["blobs"] * 1e6, 1),
        "queries_per_blob": round(counter.total / world["blobs"], 5),
        "queries_per_garbage_blob": round(counter.total / max(deleted_blobs, 1), 4),
        "blobs_deleted": deleted_blobs,
        "manifests_deleted": report.counts.get("manifests_deleted", 0),
        "objects_deleted": report.counts.get("objects_deleted", 0),
        "bytes_freed": report.bytes_freed,
        "setup": {"rows_seconds": round(world["rows_seconds"], 1), "objects_seconds": round(put_seconds, 1)},
    }


def print_results(results: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    from django.db import connection

    print()
    print(
        f"GC over one tenant, grace 0, batch size {batch_size}, SeaweedFS with the Storj guard, PostgreSQL {connection.pg_version // 10000}"
    )
    head = f"{'blobs':>9} {'garbage':>8} {'total s':>8} {'mark s':>7} {'manif s':>8} {'blobs s':>8} {'(S3 del s)':>10} {'µs/blob':>8} {'queries':>8} {'q/blob':>8} {'q/garbage':>9} {'mark q':>6} {'objects':>8}"
    print(head)
    for r in results:
        p = r["phase_seconds"]
        print(
            f"{r['blobs']:>9,} {r['garbage_blobs']:>8,} {r['seconds']:>8.2f} {p.get('mark', 0):>7.2f} {p.get('manifests', 0):>8.2f} "
            f"{p.get('blobs', 0):>8.2f} {p.get('drain', 0):>10.2f} {r['us_per_blob']:>8.1f} {r['queries']:>8,} {r['queries_per_blob']:>8.4f} "
            f"{r['queries_per_garbage_blob']:>9.3f} {r['mark_queries']:>6} {r['objects_deleted']:>8,}"
        )
    summary: dict[str, Any] = {}
    if len(results) >= 2:
        small, large = results[0], results[-1]
        t_ratio = large["us_per_blob"] / small["us_per_blob"]
        q_ratio = large["queries_per_blob"] / small["queries_per_blob"]
        linear = t_ratio < 1.5 and q_ratio < 1.2 and large["mark_queries"] == small["mark_queries"]
        summary = {"time_per_blob_ratio": round(t_ratio, 2), "queries_per_blob_ratio": round(q_ratio, 2), "linear": linear}
        print(
            f"scaling {small['blobs']:,} → {large['blobs']:,} blobs: time per blob ×{t_ratio:.2f}, queries per blob ×{q_ratio:.2f} "
            f"(1.00 = linear); mark phase {large['mark_queries']} statements at every size → {'linear' if linear else 'NOT linear'}"
        )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated blob counts (default 10000,100000)")
    parser.add_argument("--garbage", type=float, default=0.1, help="share of images left untagged (default 0.1)")
    parser.add_argument("--batch-size", type=int, default=500, help="GATEWAY_GC_BATCH_SIZE (1..1000, default 500)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    try:
        sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    except ValueError:
        parser.error(f"--sizes must be comma-separated whole numbers, got {args.sizes!r}")
    if not sizes or any(s < 100 for s in sizes):
        parser.error("every size must be at least 100 blobs")
    if not 0 < args.garbage < 1:
        parser.error("--garbage must be between 0 and 1")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be between 1 and 1000")
    world = World()
    try:
        world.start()
        configure(world, args.batch_size)
        results = [measure(size, args.garbage) for size in sizes]
        summary = print_results(results, args.batch_size)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(
                json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(), "results": results, "summary": summary}, indent=2)
            )
            log(f"figures written to {args.json}")
        return 0 if not summary or summary["linear"] else 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        log("stopping SeaweedFS and dropping the database")
        world.close()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Manifest GETs per second with the pull limiter off and on, side by side in one run (docs/decisions/0040).

    .venv/bin/python bench/pull_limits.py [--seconds 5] [--connections 16] [--rounds 5] [--json PATH]

Starts its own world with bench/lab.py (SeaweedFS, a fresh PostgreSQL database, an empty Redis db,
Wharf's real gunicorn with 2 workers, `gateway.settings.local`, DEBUG off) and removes it at the end,
also on Ctrl-C. Two tenants on that one server, owned by the same user, hold the same image manifest
(rows seeded through the ORM, as bench/api.py does): `bench` has no pull limit (the limiter's off
path: no Redis call), `limited` has an authenticated limit of 10^9 pulls per 6 hours, never reached,
so every GET runs the window script (one EVALSHA; the log grows by every GET, as a busy tenant's
does). Each round measures both with `wrk -t2 -cCONNECTIONS` for `--seconds` after a 2 s warm-up and
one checked request (200, the digest, RateLimit headers on `limited` only); the order alternates
between rounds so that neither always runs on a warmer machine. Reported: each round's req/s and the
web processes' CPU time a request (from /proc; what other load on the machine changes least), the
medians, and on/off. Target: on ≥ 95 % of off in req/s (the limiter costs under 5 %).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import signal
import statistics
import sys
import tempfile
import traceback
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import probes  # noqa: E402
from bench.api import web_cpu_seconds  # noqa: E402
from bench.lab import OWNER, TENANT, Lab, log  # noqa: E402

LIMITED = "limited"
REPOSITORY = "app"
TAG = "v1"
NEVER_REACHED = 10**9
TARGET = 0.95
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def seed(lab: Lab) -> str:
    """The `limited` tenant (same owner, the never-reached limit) and one image manifest tagged v1 in both; its digest."""
    os.environ.update(lab.wharf.env)  # type: ignore[union-attr]
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.limits import TenantLimits
    from accounts.models import Tenant, User
    from accounts.services import tenant_create, tenant_limits_set
    from gateway.registry.models import Manifest, Repository, Tag

    layer = "sha256:" + hashlib.sha256(b"layer").hexdigest()
    config = "sha256:" + hashlib.sha256(b"config").hexdigest()
    payload = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 6},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 5}],
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    with transaction.atomic():
        limited = tenant_create(slug=LIMITED, owner=User.objects.get(username=OWNER))
        tenant_limits_set(tenant=limited, limits=TenantLimits(pulls_per_window_authenticated=NEVER_REACHED))
        for tenant in (Tenant.objects.get(slug=TENANT), limited):
            repo = Repository.objects.create(tenant=tenant, name=REPOSITORY)
            manifest = Manifest.objects.create(
                tenant=tenant, repository=repo, digest=digest, media_type=MANIFEST_TYPE, size=len(payload), payload=payload
            )
            Tag.objects.create(tenant=tenant, repository=repo, name=TAG, manifest=manifest, last_pushed_at=timezone.now())
    connection.close()
    return digest


def check(url: str, headers: dict[str, str], digest: str, *, limited: bool) -> None:
    """One GET before wrk: 200, the digest, and RateLimit headers exactly when the tenant is limited."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as resp:
        resp.read()
        got, limit = resp.headers.get("Docker-Content-Digest"), resp.headers.get("RateLimit-Limit")
    if got != digest or (limit is not None) != limited:
        raise RuntimeError(f"GET {url}: digest {got} (expected {digest}), RateLimit-Limit {limit!r}")


def measure(lab: Lab, args: argparse.Namespace, digest: str) -> list[dict[str, Any]]:
    base = f"http://{lab.wharf.host}/v2"  # type: ignore[union-attr]
    headers = {"Authorization": lab.wharf.authorization, "Accept": MANIFEST_TYPE}  # type: ignore[union-attr]
    urls = {"off": f"{base}/{TENANT}/{REPOSITORY}/manifests/{TAG}", "on": f"{base}/{LIMITED}/{REPOSITORY}/manifests/{TAG}"}
    common = dict(method="GET", headers=headers, threads=2, connections=args.connections, script_dir=lab.work)
    rows = []
    for r in range(args.rounds):
        order = ("off", "on") if r % 2 == 0 else ("on", "off")
        for mode in order:
            check(urls[mode], headers, digest, limited=mode == "on")
            probes.wrk(urls[mode], seconds=2, **common)  # warm-up
            cpu_before = web_cpu_seconds(lab)
            result = probes.wrk(urls[mode], seconds=args.seconds, **common)
            cpu_ms = (web_cpu_seconds(lab) - cpu_before) * 1000 / max(result.requests, 1)
            rows.append(
                {
                    "round": r + 1,
                    "limiter": mode,
                    "rps": round(result.rps),
                    "web_cpu_ms": round(cpu_ms, 3),
                    "p50_ms": round(result.p50_ms, 2),
                    "p99_ms": round(result.p99_ms, 2),
                    "requests": result.requests,
                    "errors": result.errors,
                }
            )
            log(f"round {r + 1}, limiter {mode}: {result.rps:.0f} req/s, {cpu_ms:.3f} ms of web CPU a request")
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def median(mode: str, field: str) -> float:
        return statistics.median(r[field] for r in rows if r["limiter"] == mode)

    off, on = median("off", "rps"), median("on", "rps")
    cpu_off, cpu_on = median("off", "web_cpu_ms"), median("on", "web_cpu_ms")
    ratio = on / off if off else 0.0
    clean = not any(r["errors"] for r in rows)
    return {
        "off_rps": off,
        "on_rps": on,
        "ratio": round(ratio, 3),
        "off_web_cpu_ms": cpu_off,
        "on_web_cpu_ms": cpu_on,
        "cpu_ratio": round(cpu_on / cpu_off, 3) if cpu_off else 0.0,
        "pass": clean and ratio >= TARGET,
    }


def print_table(rows: list[dict[str, Any]], result: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        f"Manifest GET by tag, wrk -t2 -c{args.connections} for {args.seconds} s, gunicorn 2 workers, {args.rounds} rounds;"
        f" cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'round':>5} {'limiter':<8} {'req/s':>7} {'cpu ms':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':<10}")
    for r in rows:
        errors = ",".join(f"{k}={v}" for k, v in r["errors"].items()) or "-"
        print(
            f"{r['round']:>5} {r['limiter']:<8} {r['rps']:>7} {r['web_cpu_ms']:>7.3f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f}"
            f" {errors:<10}"
        )
    print(
        f"median: off {result['off_rps']:.0f} req/s, on {result['on_rps']:.0f} req/s, on/off {result['ratio']:.3f}"
        f" (cost {(1 - result['ratio']) * 100:.1f} %); target on/off ≥ {TARGET}: {'PASS' if result['pass'] else 'MISS'}"
    )
    print(
        f"web CPU a request: off {result['off_web_cpu_ms']:.3f} ms, on {result['on_web_cpu_ms']:.3f} ms,"
        f" on/off {result['cpu_ratio']:.3f} (what the machine's other load changes least; Redis's own CPU is not in it)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=5, help="wrk duration per measurement (default 5)")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16, as bench/run.py)")
    p.add_argument("--rounds", type=int, default=5, help="off/on pairs (default 5; the medians are compared)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (gunicorn log) for inspection")
    args = p.parse_args(argv)
    if args.seconds < 1 or args.connections < 1 or args.rounds < 1:
        p.error("need at least 1 second, 1 connection and 1 round")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.access(probes.WRK, os.X_OK):
        print(f"bench: {probes.WRK} is missing; `make bench` installs it (deploy/install-system-deps.sh)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    runs = ROOT / "var" / "bench"
    runs.mkdir(parents=True, exist_ok=True)
    lab = Lab(Path(tempfile.mkdtemp(prefix=f"pulls-{dt.datetime.now():%Y%m%d-%H%M%S}-", dir=runs)), keep=args.keep)
    try:
        lab.start(want_dist=False)
        digest = seed(lab)
        rows = measure(lab, args, digest)
        result = summary(rows)
        print_table(rows, result, args)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            at = dt.datetime.now(dt.UTC).isoformat()
            args.json.write_text(json.dumps({"at": at, "rows": rows, **result}, indent=2))
            log(f"figures written to {args.json}")
        return 0 if result["pass"] else 1
    except (KeyboardInterrupt, Exception) as exc:  # Ctrl-C / SIGTERM: 130; a crash: 1 with Wharf's log tail
        if isinstance(exc, KeyboardInterrupt):
            log("interrupted")
            return 130
        log("the benchmark crashed:\n" + traceback.format_exc())
        if lab.wharf is not None and lab.wharf.proc is not None:
            log("Wharf's log tail:\n" + lab.wharf.log_tail(3000))
        return 1
    finally:
        log("stopping everything the benchmark started")
        lab.close()


if __name__ == "__main__":
    sys.exit(main())

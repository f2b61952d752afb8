#!/usr/bin/env python
"""Manifest GETs per second with metering and pull limits off, metering only, and both, side by side in one run.

    .venv/bin/python bench/pull_limits.py [--seconds 5] [--connections 16] [--rounds 5] [--json PATH]

Starts its own world with bench/lab.py (SeaweedFS, a fresh PostgreSQL database, an empty Redis db,
Wharf's real gunicorn with 2 workers, `gateway.settings.local`, DEBUG off) and removes it at the end,
also on Ctrl-C. Two tenants, owned by the same user, hold the same image manifest (rows seeded through
the ORM, as bench/api.py does): `bench` has no pull limit (the limiter's off path: no script), `limited`
an authenticated limit of 10^9 pulls per 6 hours, never reached, so every GET runs the window script,
which also queues the pull's event (docs/decisions/0047; the log grows by every GET, as a busy tenant's
does). A twin gunicorn of the same Wharf runs with GATEWAY_EVENTS_RECORD=false (nothing recorded: the
baseline). Three modes: `off` (the twin, `bench`: no Redis call), `metering` (`bench`: one RPUSH),
`both` (`limited`: one EVALSHA that counts and queues). Each round measures every mode with
`wrk -t2 -cCONNECTIONS` for `--seconds` after a 2 s warm-up and one checked request (200, the digest,
RateLimit headers on `both` only); the order rotates between rounds so that none always runs on a warmer
machine, and the events queued are checked against the GETs served (metering modes: one each; off:
none). Reported: each round's req/s and the web processes' CPU time a request (from /proc; what other
load on the machine changes least), the medians, and the ratios to `off`. Target (issue 12): metering
and rate limiting together cost under 5 %: `both` ≥ 95 % of `off` in req/s (and, the steadier reading
on a shared machine, in requests per CPU second).
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
from bench.lab import OWNER, TENANT, Lab, log  # noqa: E402

LIMITED = "limited"
REPOSITORY = "app"
TAG = "v1"
NEVER_REACHED = 10**9
TARGET = 0.95
MODES = ("off", "metering", "both")
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


def queued(lab: Lab) -> int:
    """Events waiting in the stream's queue (nothing flushes it during the bench)."""
    import redis

    from gateway.registry.services.events import QUEUE_KEY

    return int(redis.Redis.from_url(lab.redis_url).llen(QUEUE_KEY))


# gunicorn's gthread workers each accept what they can: wrk's connections, opened at once, sometimes all land on one
# worker, which then serves everything on one core while the other idles (measured: 281 req/s instead of ~600, CPU
# ticks 389 against 3). Such a run measures accept luck, not the request's cost: it is run again, at most this often.
MIN_WORKER_SHARE = 0.25
UNBALANCED_TRIES = 4


def redis_pid(lab: Lab) -> int:
    """The lab's Redis server process (its CPU time is read from /proc like the web processes')."""
    import redis

    return int(redis.Redis.from_url(lab.redis_url).info("server")["process_id"])


def measure(lab: Lab, args: argparse.Namespace, digest: str) -> list[dict[str, Any]]:
    assert lab.wharf is not None
    redis_pids = [redis_pid(lab)]
    twin = lab.start_twin("unmetered", {"GATEWAY_EVENTS_RECORD": "false"})
    headers = {"Authorization": lab.wharf.authorization, "Accept": MANIFEST_TYPE}
    path = f"{REPOSITORY}/manifests/{TAG}"
    urls = {
        "off": f"http://{twin.host}/v2/{TENANT}/{path}",
        "metering": f"http://{lab.wharf.host}/v2/{TENANT}/{path}",
        "both": f"http://{lab.wharf.host}/v2/{LIMITED}/{path}",
    }
    servers = {"off": twin, "metering": lab.wharf, "both": lab.wharf}
    common = dict(method="GET", headers=headers, threads=2, connections=args.connections, script_dir=lab.work)
    rows = []
    for r in range(args.rounds):
        order = MODES[r % 3 :] + MODES[: r % 3]
        for mode in order:
            pids = lab.wharf_pids(servers[mode])
            check(urls[mode], headers, digest, limited=mode == "both")
            probes.wrk(urls[mode], seconds=2, **common)  # warm-up; the previous mode's last requests land meanwhile
            for attempt in range(1, UNBALANCED_TRIES + 1):
                workers = pids[1:]  # the master serves nothing
                before = queued(lab)
                cpu_before, redis_before = cpu_seconds(pids), cpu_seconds(redis_pids)
                split_before = [cpu_seconds([pid]) for pid in workers]
                result = probes.wrk(urls[mode], seconds=args.seconds, **common)
                cpu_ms = (cpu_seconds(pids) - cpu_before) * 1000 / max(result.requests, 1)
                redis_us = (cpu_seconds(redis_pids) - redis_before) * 1e6 / max(result.requests, 1)
                split = [cpu_seconds([pid]) - b for pid, b in zip(workers, split_before, strict=True)]
                share = min(split) / max(sum(split), 1e-9)
                if share >= MIN_WORKER_SHARE:
                    break
                log(
                    f"round {r + 1}, {mode}, try {attempt}: one worker did {share:.0%} of the work (the other took the connections)"
                )
            events = queued(lab) - before
            # One event a GET served; wrk counts neither the requests in flight when it starts counting nor those
            # in flight when it stops (one a connection each time), and those record events too.
            expected = (0, 0) if mode == "off" else (result.requests, result.requests + 2 * args.connections)
            rows.append(
                {
                    "round": r + 1,
                    "mode": mode,
                    "rps": round(result.rps),
                    "web_cpu_ms": round(cpu_ms, 3),
                    "redis_cpu_us": round(redis_us, 1),
                    "least_worker_share": round(share, 3),
                    "attempts": attempt,
                    "p50_ms": round(result.p50_ms, 2),
                    "p99_ms": round(result.p99_ms, 2),
                    "requests": result.requests,
                    "errors": result.errors,
                    "events": events,
                    "events_ok": expected[0] <= events <= expected[1],
                }
            )
            log(f"round {r + 1}, {mode}: {result.rps:.0f} req/s, {cpu_ms:.3f} ms of web CPU a request, {events} events queued")
    return rows


def cpu_seconds(pids: list[int]) -> float:
    return sum(probes._cpu_ticks(pid) or 0 for pid in pids) / probes.TICK


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def median(mode: str, field: str) -> float:
        return statistics.median(r[field] for r in rows if r["mode"] == mode)

    out: dict[str, Any] = {}
    for mode in MODES:
        out[f"{mode}_rps"], out[f"{mode}_web_cpu_ms"] = median(mode, "rps"), median(mode, "web_cpu_ms")
    for mode in ("metering", "both"):
        # Both as "throughput kept": req/s of the mode / req/s off, and requests per CPU second likewise.
        out[f"{mode}_ratio"] = round(out[f"{mode}_rps"] / out["off_rps"], 3) if out["off_rps"] else 0.0
        out[f"{mode}_cpu_ratio"] = (
            round(out["off_web_cpu_ms"] / out[f"{mode}_web_cpu_ms"], 3) if out[f"{mode}_web_cpu_ms"] else 0.0
        )
    # Paired: each round's mode against that round's off (the modes of a round run back to back), then the median,
    # which a noisy minute moves less than a ratio of medians taken from different minutes.
    for mode in ("metering", "both"):
        paired = [
            r["rps"] / o["rps"]
            for r in rows
            for o in rows
            if r["mode"] == mode and o["mode"] == "off" and r["round"] == o["round"]
        ]
        out[f"{mode}_paired_ratio"] = round(statistics.median(paired), 3) if paired else 0.0
        out[f"{mode}_redis_cpu_us"] = median(mode, "redis_cpu_us")
    out["off_redis_cpu_us"] = median("off", "redis_cpu_us")
    clean = not any(r["errors"] for r in rows) and all(r["events_ok"] for r in rows)
    out["clean"] = clean
    out["pass"] = clean and out["both_ratio"] >= TARGET
    out["paired_pass"] = clean and out["both_paired_ratio"] >= TARGET
    out["cpu_pass"] = clean and out["both_cpu_ratio"] >= TARGET
    return out


def print_table(rows: list[dict[str, Any]], result: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        f"Manifest GET by tag, wrk -t2 -c{args.connections} for {args.seconds} s, gunicorn 2 workers, {args.rounds} rounds;"
        f" cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'round':>5} {'mode':<9} {'req/s':>7} {'cpu ms':>7} {'redis us':>8} {'p50 ms':>7} {'p99 ms':>7} {'events':<7} {'errors':<10}"
    )
    for r in rows:
        errors = ",".join(f"{k}={v}" for k, v in r["errors"].items()) or "-"
        print(
            f"{r['round']:>5} {r['mode']:<9} {r['rps']:>7} {r['web_cpu_ms']:>7.3f} {r['redis_cpu_us']:>8.1f}"
            f" {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f}"
            f" {'ok' if r['events_ok'] else 'WRONG':<7} {errors:<10}"
        )
    for mode in MODES:
        line = (
            f"median {mode:<9} {result[f'{mode}_rps']:>6.0f} req/s, {result[f'{mode}_web_cpu_ms']:.3f} ms of web CPU"
            f" and {result[f'{mode}_redis_cpu_us']:.1f} µs of Redis CPU a request"
        )
        if mode != "off":
            line += (
                f"; of off: req/s {result[f'{mode}_ratio']:.3f} (cost {(1 - result[f'{mode}_ratio']) * 100:.1f} %),"
                f" paired by round {result[f'{mode}_paired_ratio']:.3f} (cost {(1 - result[f'{mode}_paired_ratio']) * 100:.1f} %),"
                f" requests per CPU second {result[f'{mode}_cpu_ratio']:.3f} (cost {(1 - result[f'{mode}_cpu_ratio']) * 100:.1f} %)"
            )
        print(line)
    verdict = {True: "PASS", False: "MISS"}
    print(
        f"target, metering and rate limiting together < 5 % (both/off ≥ {TARGET}): req/s {verdict[result['pass']]},"
        f" req/s paired by round {verdict[result['paired_pass']]}, web CPU a request {verdict[result['cpu_pass']]}"
        " (Redis's own CPU is in the req/s, on the same cores, not in the web CPU)"
        + ("" if result["clean"] else "; NOT CLEAN: errors, or events queued ≠ GETs served")
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=5, help="wrk duration per measurement (default 5)")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16, as bench/run.py)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the three modes (default 5; medians compared)")
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

#!/usr/bin/env python
"""`make bench`: Wharf's throughput, request rate and memory beside two yardsticks on the same SeaweedFS.

Starts everything it measures (SeaweedFS, a fresh PostgreSQL database, an empty Redis db, Wharf's
gunicorn with 2 workers, CNCF Distribution with redirect off and on), then per repeat:

  build a BIG single-layer image and a SMALL image of COUNT × 1 MiB layers (fresh content per repeat)
  Wharf (proxied)   skopeo push/pull of both, curl of the big blob, web RSS sampled during the big push
  Distribution off  the same
  Wharf (redirect)  tenant switched to redirect_blob_downloads: skopeo pull of both, curl -L of the big blob
  Distribution on   the same work as Distribution off, curl -L
  boto3             multipart upload (64 MiB parts) and parallel ranged download of the big layer: the ceiling
  wrk               manifest GET and HEAD by tag, 16 connections, against Wharf and Distribution (redirect off)

then prints medians, ratios and the issue's targets, and writes var/bench/results-<timestamp>.json.
Everything started is stopped again, also on Ctrl-C, SIGTERM or an error. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import probes  # noqa: E402
from bench.lab import TENANT, Lab, log  # noqa: E402
from tests.e2e import harness  # noqa: E402

MiB = probes.MiB
MB = probes.MB
SYSTEMS = ("wharf", "dist-off", "dist-on", "boto3")
TENANT_CACHE_WAIT = 10.5  # seconds: gateway/registry/v2/base.py caches tenants for 10 s per process
LABELS = {"wharf": "Wharf", "dist-off": "Distribution (redirect off)", "dist-on": "Distribution (redirect on)", "boto3": "boto3"}


# --- results ------------------------------------------------------------------------------------------


@dataclass
class Results:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    details: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, measure: str, system: str, value: float, detail: dict[str, Any] | None = None) -> None:
        self.values.setdefault(measure, {}).setdefault(system, []).append(value)
        if detail:
            self.details.setdefault(measure, {}).setdefault(system, []).append(detail)

    def fail(self, measure: str, system: str, repeat: int, error: str, server_log: str = "") -> None:
        self.errors.append({"measure": measure, "system": system, "repeat": repeat + 1, "error": error, "server_log": server_log})

    def failed(self, measure: str, system: str) -> bool:
        return any(e["measure"] == measure and e["system"] == system for e in self.errors)

    def median(self, measure: str, system: str) -> float | None:
        vals = self.values.get(measure, {}).get(system)
        return statistics.median(vals) if vals else None

    def worst(self, measure: str, system: str) -> float | None:
        vals = self.values.get(measure, {}).get(system)
        return max(vals) if vals else None


class Bench:
    def __init__(self, lab: Lab, args: argparse.Namespace, res: Results) -> None:
        self.lab = lab
        self.args = args
        self.res = res
        self.systems = set(args.systems)
        self.redirect_changed_at: float | None = None
        self.redirect_on = False
        self.scripts = lab.work / "scripts"
        self.scripts.mkdir(parents=True, exist_ok=True)

    # -- plumbing --------------------------------------------------------------------------------

    def creds(self, system: str) -> str | None:
        if system == "wharf":
            assert self.lab.wharf is not None
            return self.lab.wharf.creds
        if self.lab.dist_creds:
            return ":".join(self.lab.dist_creds)
        return None

    def host(self, system: str) -> str:
        if system == "wharf":
            assert self.lab.wharf is not None
            return self.lab.wharf.host
        return self.lab.dist[system].host

    def repo(self, system: str, name: str) -> str:
        return f"{self.host(system)}/{TENANT}/{name}"

    def pids(self, system: str) -> Callable[[], list[int]]:
        return self.lab.wharf_pids if system == "wharf" else (lambda: self.lab.dist_pids(system))

    def sampler(self, system: str) -> probes.Sampler:
        groups: dict[str, Callable[[], list[int]]] = {"server": self.pids(system), "s3": self.lab.s3_pids}
        return probes.Sampler(groups)

    def step(
        self, measure: str, system: str, r: int, what: str, fn: Callable[[], tuple[float, str, dict[str, Any] | None]]
    ) -> float | None:
        """Run one measurement; record its value (or its failure with the server's log) and say so."""
        offset = self.lab.wharf.log_size() if (system == "wharf" and self.lab.wharf) else 0
        try:
            value, shown, detail = fn()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if system == "wharf" and self.lab.wharf:
                server_log = probes.error_lines(self.lab.wharf.log_since(offset))
            elif system in self.lab.dist:
                server_log = "\n".join(self.lab.dist_log_tail(system).splitlines()[-25:])
            else:
                server_log = ""
            message = (
                str(exc) if isinstance(exc, (harness.CommandError, RuntimeError)) else "".join(traceback.format_exception(exc))
            )
            self.res.fail(measure, system, r, message, server_log)
            first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
            log(f"  {system:<8} {what}: FAILED — {first[:200]}")
            return None
        if system == "wharf" and self.lab.wharf:
            detail = dict(detail or {})
            detail["wharf_requests"] = probes.request_breakdown(self.lab.wharf.log_since(offset))
        self.res.add(measure, system, value, detail)
        log(f"  {system:<8} {what}: {shown}")
        return value

    def skip(self, measure: str, system: str, r: int, why: str) -> None:
        self.res.fail(measure, system, r, f"skipped: {why}")
        log(f"  {system:<8} {measure}: skipped ({why})")

    # -- redirect mode of the Wharf tenant --------------------------------------------------------

    def set_redirect(self, on: bool) -> None:
        if self.redirect_on == on:
            return
        self.redirect_changed_at = self.lab.set_redirect(on)
        self.redirect_on = on
        log(f"  wharf    tenant redirect_blob_downloads -> {on}")

    def settle_redirect(self, repo: str, digest: str) -> None:
        """Wait out the web processes' tenant cache, then check the mode with a 1-byte GET."""
        if self.redirect_changed_at is not None:
            left = self.redirect_changed_at + TENANT_CACHE_WAIT - time.monotonic()
            if left > 0:
                log(f"  wharf    waiting {left:.1f} s for the tenant cache (10 s TTL)")
                time.sleep(left)
        want = 307 if self.redirect_on else 206
        for _ in range(6):
            got = self.lab.blob_probe(repo, digest)
            if got == want:
                return
            time.sleep(2)
        raise RuntimeError(f"blob GET answers {got}, expected {want} (redirect_blob_downloads={self.redirect_on})")

    def check_mode(self, r: int, repo: str, digest: str) -> bool:
        """settle_redirect(), recording a failure (with Wharf's log) instead of raising."""
        offset = self.lab.wharf.log_size() if self.lab.wharf else 0
        try:
            self.settle_redirect(repo, digest)
            return True
        except Exception as exc:
            log(f"  wharf    redirect mode check FAILED — {exc}")
            server_log = probes.error_lines(self.lab.wharf.log_since(offset)) if self.lab.wharf else ""
            self.res.fail("redirect_mode", "wharf", r, str(exc), server_log)
            return False

    # -- the work --------------------------------------------------------------------------------

    def warm_up(self, salt: int) -> None:
        """One small push and pull per registry, unmeasured: connections, token keys, boto3 clients, imports."""
        info = harness.build_oci_layout(self.lab.work / "warm-up", layers=[MiB, 4096], tag="v1", seed=salt + 999)
        for system in ("wharf", "dist-off", "dist-on"):
            if system not in self.systems:
                continue
            ref = f"docker://{self.repo(system, 'warm-up')}:v1"
            try:
                probes.skopeo_push(info.oci_ref, ref, self.creds(system), timeout=300)
                probes.skopeo_pull(ref, self.lab.work / "pulled", "v1", self.creds(system), timeout=300)
                log(f"  {system:<8} warm-up push and pull: ok")
            except Exception as exc:
                log(f"  {system:<8} warm-up FAILED (measurements will say more): {str(exc).strip().splitlines()[0][:200]}")
        shutil.rmtree(self.lab.work / "warm-up", ignore_errors=True)

    def run(self) -> None:
        salt = secrets.randbelow(1_000_000) * 1000  # fresh digests per run (skopeo's blob-info cache outlives runs)
        self.warm_up(salt)
        for r in range(self.args.repeat):
            log(f"=== repeat {r + 1}/{self.args.repeat}")
            images = self.lab.work / f"images-{r}"
            t0 = time.perf_counter()
            big = harness.build_oci_layout(images / "big", layers=[self.args.big_mib * MiB], tag="v1", seed=salt + 2 * r)
            small = harness.build_oci_layout(
                images / "small", layers=[self.args.small_kib * 1024] * self.args.small_count, tag="v1", seed=salt + 2 * r + 1
            )
            log(f"  built the images in {time.perf_counter() - t0:.1f} s")
            pushed: dict[tuple[str, str], bool] = {}
            if "wharf" in self.systems:
                self.registry_round("wharf", r, big, small, pushed, redirect=False)
                if "dist-off" in self.systems or "dist-on" in self.systems:
                    self.set_redirect(True)  # the cache TTL runs out while Distribution works
            if "dist-off" in self.systems:
                self.registry_round("dist-off", r, big, small, pushed, redirect=False)
            if "wharf" in self.systems:
                self.set_redirect(True)
                self.wharf_redirect_round(r, big, small, pushed)
                self.set_redirect(False)
            if "dist-on" in self.systems:
                self.registry_round("dist-on", r, big, small, pushed, redirect=True)
            if "boto3" in self.systems:
                self.boto3_round(r, big)
            self.manifest_round(r, big, small, pushed)
            shutil.rmtree(images, ignore_errors=True)

    def image_bytes(self, info: harness.ImageInfo) -> int:
        return info.manifest.size + sum(b.size for b in info.all_blobs())

    def push(self, system: str, r: int, measure: str, info: harness.ImageInfo, name: str, what: str, *, sample: bool) -> bool:
        size = self.image_bytes(info)
        dest = f"docker://{self.repo(system, name)}:v1"
        offset = self.lab.wharf.log_size() if system == "wharf" and self.lab.wharf else 0

        def go() -> tuple[float, str, dict[str, Any] | None]:
            if not sample:
                secs = probes.skopeo_push(info.oci_ref, dest, self.creds(system))
                return size / secs / MB, f"{size / secs / MB:.1f} MB/s ({secs:.1f} s)", None
            with self.sampler(system) as s:
                secs = probes.skopeo_push(info.oci_ref, dest, self.creds(system))
            detail = s.summary()
            if system == "wharf" and self.lab.wharf:
                text = self.lab.wharf.log_since(offset)
                detail["slow_requests"] = probes.slow_requests(text, min_ms=200)
                detail["requests"] = probes.request_counts(text)
                web = s.stats["server"]
                self.res.add(
                    "rss_push",
                    "wharf",
                    web.growth_rss / MiB,
                    {"baseline_mib": web.baseline_rss / MiB, "peak_mib": web.peak_rss / MiB, "growth_mib": web.growth_rss / MiB},
                )
            return size / secs / MB, f"{size / secs / MB:.1f} MB/s ({secs:.1f} s){anatomy(detail)}", detail

        return self.step(measure, system, r, what, go) is not None

    def pull(self, system: str, r: int, measure: str, info: harness.ImageInfo, name: str, what: str, *, sample: bool) -> None:
        size = self.image_bytes(info)
        src = f"docker://{self.repo(system, name)}:v1"
        out = self.lab.work / "pulled"

        def go() -> tuple[float, str, dict[str, Any] | None]:
            if not sample:
                secs = probes.skopeo_pull(src, out, "v1", self.creds(system))
                return size / secs / MB, f"{size / secs / MB:.1f} MB/s ({secs:.1f} s)", None
            with self.sampler(system) as s:
                secs = probes.skopeo_pull(src, out, "v1", self.creds(system))
            detail = s.summary()
            self.note_download_rss(system, measure, s)
            return size / secs / MB, f"{size / secs / MB:.1f} MB/s ({secs:.1f} s){anatomy(detail)}", detail

        self.step(measure, system, r, what, go)

    def curl(self, system: str, r: int, measure: str, info: harness.ImageInfo, name: str, what: str, *, follow: bool) -> None:
        layer = info.layers[0]
        url = f"http://{self.host(system)}/v2/{TENANT}/{name}/blobs/{layer.digest}"

        def go() -> tuple[float, str, dict[str, Any] | None]:
            with self.sampler(system) as s:
                res = probes.curl_download(url, creds=self.creds(system), follow=follow)
            if res.size != layer.size:
                raise RuntimeError(f"curl got {res.size} bytes of {layer.size}")
            detail = s.summary()
            detail["curl"] = res.__dict__
            self.note_download_rss(system, measure, s)
            return res.speed / MB, f"{res.speed / MB:.1f} MB/s ({res.seconds:.1f} s){anatomy(detail)}", detail

        self.step(measure, system, r, what, go)

    def note_download_rss(self, system: str, measure: str, s: probes.Sampler) -> None:
        if system == "wharf" and not self.redirect_on:
            web = s.stats["server"]
            self.res.add(
                "rss_download",
                "wharf",
                web.growth_rss / MiB,
                {"measure": measure, "baseline_mib": web.baseline_rss / MiB, "peak_mib": web.peak_rss / MiB},
            )

    def registry_round(
        self, system: str, r: int, big: harness.ImageInfo, small: harness.ImageInfo, pushed: dict, *, redirect: bool
    ) -> None:
        big_name, small_name = f"big-r{r}", f"small-r{r}"
        bigl, smalll = f"{self.args.big_mib} MiB", f"{self.args.small_count}×{self.args.small_kib} KiB"
        sfx = "_redirect" if redirect else ""
        pushed[(system, "big")] = self.push(system, r, "push_big", big, big_name, f"push {bigl}", sample=True)
        if pushed[(system, "big")]:
            if system == "wharf" and not self.check_mode(r, big_name, big.layers[0].digest):
                for m in ("pull_big", "curl_big"):
                    self.skip(m, system, r, "the tenant's proxied mode did not take effect")
            else:
                self.pull(
                    system, r, f"pull_big{sfx}", big, big_name, f"pull {bigl}" + (" (redirect)" if redirect else ""), sample=True
                )
                self.curl(
                    system,
                    r,
                    f"curl_big{sfx}",
                    big,
                    big_name,
                    "curl big blob" + (" -L (redirect)" if redirect else ""),
                    follow=redirect,
                )
        else:
            for m in (f"pull_big{sfx}", f"curl_big{sfx}"):
                self.skip(m, system, r, "the push failed")
        pushed[(system, "small")] = self.push(system, r, "push_small", small, small_name, f"push {smalll}", sample=False)
        if pushed[(system, "small")]:
            self.pull(
                system,
                r,
                f"pull_small{sfx}",
                small,
                small_name,
                f"pull {smalll}" + (" (redirect)" if redirect else ""),
                sample=False,
            )
        else:
            self.skip(f"pull_small{sfx}", system, r, "the push failed")

    def wharf_redirect_round(self, r: int, big: harness.ImageInfo, small: harness.ImageInfo, pushed: dict) -> None:
        big_name, small_name = f"big-r{r}", f"small-r{r}"
        bigl, smalll = f"{self.args.big_mib} MiB", f"{self.args.small_count}×{self.args.small_kib} KiB"
        if not pushed.get(("wharf", "big")):
            for m in ("pull_big_redirect", "curl_big_redirect", "pull_small_redirect"):
                self.skip(m, "wharf", r, "the push failed")
            return
        if not self.check_mode(r, big_name, big.layers[0].digest):
            for m in ("pull_big_redirect", "curl_big_redirect", "pull_small_redirect"):
                self.skip(m, "wharf", r, "the tenant's redirect mode did not take effect")
            return
        self.pull("wharf", r, "pull_big_redirect", big, big_name, f"pull {bigl} (redirect)", sample=True)
        self.curl("wharf", r, "curl_big_redirect", big, big_name, "curl big blob -L (redirect)", follow=True)
        if pushed.get(("wharf", "small")):
            self.pull("wharf", r, "pull_small_redirect", small, small_name, f"pull {smalll} (redirect)", sample=False)
        else:
            self.skip("pull_small_redirect", "wharf", r, "the push failed")

    def boto3_round(self, r: int, big: harness.ImageInfo) -> None:
        client = probes.boto3_client(self.lab.s3_env)
        bucket = self.lab.s3_env["AWS_STORAGE_BUCKET_NAME"]
        layer = big.layers[0]
        key = f"boto3-ceiling/r{r}/{layer.digest}"
        path = big.blob_path(layer.digest)

        def up() -> tuple[float, str, dict[str, Any] | None]:
            with probes.Sampler({"s3": self.lab.s3_pids}) as s:
                secs = probes.boto3_upload(client, bucket, key, path)
            detail = s.summary()
            return layer.size / secs / MB, f"{layer.size / secs / MB:.1f} MB/s ({secs:.1f} s){anatomy(detail, own=True)}", detail

        def down() -> tuple[float, str, dict[str, Any] | None]:
            with probes.Sampler({"s3": self.lab.s3_pids}) as s:
                secs, got = probes.boto3_download(client, bucket, key)
            detail = s.summary()
            return got / secs / MB, f"{got / secs / MB:.1f} MB/s ({secs:.1f} s){anatomy(detail, own=True)}", detail

        if self.step("boto3_up", "boto3", r, "multipart upload (64 MiB parts)", up) is not None:
            self.step("boto3_down", "boto3", r, "parallel ranged download", down)
        try:
            probes.boto3_delete(client, bucket, [key])
        except Exception as exc:  # not a measurement; the bucket goes away with SeaweedFS anyway
            log(f"  boto3    could not delete {key}: {exc}")

    def manifest_round(self, r: int, big: harness.ImageInfo, small: harness.ImageInfo, pushed: dict) -> None:
        for system in ("wharf", "dist-off"):
            if system not in self.systems:
                continue
            if pushed.get((system, "small")):
                name, info = f"small-r{r}", small
            elif pushed.get((system, "big")):
                name, info = f"big-r{r}", big
            else:
                for m in ("manifest_get", "manifest_head"):
                    self.skip(m, system, r, "no image was pushed")
                continue
            url = f"http://{self.host(system)}/v2/{TENANT}/{name}/manifests/v1"
            for method in ("GET", "HEAD"):
                measure = f"manifest_{method.lower()}"
                tool = "wrk" if method == "GET" else "ab"

                def go(
                    method: str = method,
                    tool: str = tool,
                    name: str = name,
                    info: harness.ImageInfo = info,
                    system: str = system,
                    url: str = url,
                ) -> tuple[float, str, dict[str, Any] | None]:
                    headers = {"Accept": harness.MANIFEST_ACCEPT}
                    auth, scheme = registry_authorization(self.host(system), f"{TENANT}/{name}", self.creds(system))
                    if auth:
                        headers["Authorization"] = auth
                    check_manifest(url, method, headers, info.manifest_digest)

                    def load(seconds: int) -> probes.WrkResult:
                        if tool == "wrk":
                            return probes.wrk(
                                url,
                                method=method,
                                headers=headers,
                                connections=self.args.connections,
                                threads=2,
                                seconds=seconds,
                                script_dir=self.scripts,
                            )
                        return probes.ab(
                            url, head=method == "HEAD", headers=headers, connections=self.args.connections, seconds=seconds
                        )

                    load(2)  # warm-up: connections, caches
                    w = load(self.args.wrk_seconds)
                    bad = sum(w.errors.values())
                    if bad > w.requests * 0.01:
                        raise RuntimeError(f"{tool}: {bad} errors in {w.requests} requests: {w.errors}")
                    detail = {
                        "tool": tool,
                        "auth": scheme,
                        "requests": w.requests,
                        "errors": w.errors,
                        "p50_ms": w.p50_ms,
                        "p99_ms": w.p99_ms,
                    }
                    errs = f", errors {w.errors}" if w.errors else ""
                    return (
                        w.rps,
                        f"{w.rps:.0f} req/s ({tool}, {scheme or 'anonymous'}; p50 {w.p50_ms:.1f} ms, p99 {w.p99_ms:.1f} ms{errs})",
                        detail,
                    )

                self.step(measure, system, r, f"manifest {method} ×{self.args.connections} conns", go)


def registry_authorization(host: str, repository: str, creds: str | None) -> tuple[str, str]:
    """The Authorization header a registry client would send for pulls of `repository`, and its scheme.

    If the registry challenges with `Bearer realm=...` (the Docker token flow), a pull token is
    fetched from the realm with Basic credentials, as docker/skopeo do; otherwise Basic is sent.
    """
    if not creds:
        return "", ""
    import base64
    import re
    import urllib.error
    import urllib.parse

    basic = "Basic " + base64.b64encode(creds.encode()).decode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(f"http://{host}/v2/", timeout=30).read()
        return basic, "basic"
    except urllib.error.HTTPError as e:
        challenge = e.headers.get("WWW-Authenticate", "") or ""
    if not challenge.lower().startswith("bearer"):
        return basic, "basic"
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    query = urllib.parse.urlencode({"service": params.get("service", ""), "scope": f"repository:{repository}:pull"})
    req = urllib.request.Request(f"{params['realm']}?{query}", headers={"Authorization": basic})
    with opener.open(req, timeout=30) as resp:
        doc = json.loads(resp.read())
    token = doc.get("token") or doc.get("access_token")
    if not token:
        raise RuntimeError(f"no token in the answer of {params['realm']}: {sorted(doc)}")
    return f"Bearer {token}", "bearer"


def check_manifest(url: str, method: str, headers: dict[str, str], digest: str) -> None:
    """One request before wrk: the URL must answer 200 with the right digest (wrk would happily count 401s)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, method=method, headers=headers)
    with opener.open(req, timeout=30) as resp:
        resp.read()
        got = resp.headers.get("Docker-Content-Digest")
        if resp.status != 200 or got != digest:
            raise RuntimeError(f"{method} {url}: HTTP {resp.status}, digest {got}, expected {digest}")


def anatomy(detail: dict[str, Any], own: bool = False) -> str:
    """' | CPU s: server 12.3, s3 4.5, client 1.2 | server RSS +45 MiB'"""
    parts = []
    for name in ("server", "s3"):
        if name in detail:
            parts.append(f"{name} {detail[name]['cpu_s']:.1f}")
    if own:
        parts.append(f"boto3 (this process) {detail['bench_process_cpu_s']:.1f}")
    else:
        parts.append(f"client {detail['client_cpu_s']:.1f}")
    out = " | CPU s: " + ", ".join(parts)
    if "server" in detail:
        out += f" | server RSS +{detail['server']['rss_growth_mib']:.0f} MiB"
    return out


# --- the report ---------------------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    label: str
    unit: str
    wharf: str | None  # measure key for Wharf's value (system "wharf")
    dist_off: str | None
    dist_on: str | None
    ceiling: str | None  # measure key with system "boto3"
    yard: str | None  # which Distribution the ratio uses: "dist-off", "dist-on", "best"
    target: tuple[str, float] | None  # ("ceiling", f), ("dist", f), ("max", value)
    worst: bool = False  # RSS: judge the worst repeat, not the median


def rows(args: argparse.Namespace) -> list[Row]:
    big = f"{args.big_mib} MiB" if args.big_mib != 1024 else "1 GiB"
    small = f"{args.small_count}×{args.small_kib // 1024 if args.small_kib % 1024 == 0 else args.small_kib}" + (
        " MiB" if args.small_kib % 1024 == 0 else " KiB"
    )
    return [
        Row(
            "push_big", f"push {big} (skopeo)", "MB/s", "push_big", "push_big", "push_big", "boto3_up", "best", ("ceiling", 0.85)
        ),
        Row("pull_big", f"pull {big} (skopeo, proxied)", "MB/s", "pull_big", "pull_big", None, None, "dist-off", ("dist", 1.0)),
        Row(
            "pull_big_redirect",
            f"pull {big} (skopeo, redirect)",
            "MB/s",
            "pull_big_redirect",
            None,
            "pull_big_redirect",
            None,
            "dist-on",
            ("dist", 1.0),
        ),
        Row(
            "curl_big",
            f"curl {big} blob (proxied)",
            "MB/s",
            "curl_big",
            "curl_big",
            None,
            "boto3_down",
            "dist-off",
            ("ceiling", 0.50),
        ),
        Row(
            "curl_big_redirect",
            f"curl -L {big} blob (redirect)",
            "MB/s",
            "curl_big_redirect",
            None,
            "curl_big_redirect",
            "boto3_down",
            "dist-on",
            None,
        ),
        Row(
            "push_small", f"push {small} (skopeo)", "MB/s", "push_small", "push_small", "push_small", None, "best", ("dist", 1.5)
        ),
        Row(
            "pull_small",
            f"pull {small} (skopeo, proxied)",
            "MB/s",
            "pull_small",
            "pull_small",
            None,
            None,
            "dist-off",
            ("dist", 1.5),
        ),
        Row(
            "pull_small_redirect",
            f"pull {small} (skopeo, redirect)",
            "MB/s",
            "pull_small_redirect",
            None,
            "pull_small_redirect",
            None,
            "dist-on",
            ("dist", 1.5),
        ),
        Row(
            "manifest_get",
            f"manifest GET, {args.connections} conns (wrk)",
            "req/s",
            "manifest_get",
            "manifest_get",
            None,
            None,
            "dist-off",
            ("dist", 2.0),
        ),
        Row(
            "manifest_head",
            f"manifest HEAD, {args.connections} conns (ab)",
            "req/s",
            "manifest_head",
            "manifest_head",
            None,
            None,
            "dist-off",
            None,
        ),
        Row("rss_push", f"web RSS growth, {big} push", "MiB", "rss_push", None, None, None, None, ("max", 150.0), worst=True),
        Row("rss_download", f"web RSS growth, {big} pull/curl", "MiB", "rss_download", None, None, None, None, None, worst=True),
    ]


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "req/s":
        return f"{v:,.0f}"
    return f"{v:,.1f}"


def evaluate(res: Results, args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    for row in rows(args):
        agg = res.worst if row.worst else res.median
        w = agg(row.wharf, "wharf") if row.wharf else None
        doff = res.median(row.dist_off, "dist-off") if row.dist_off else None
        don = res.median(row.dist_on, "dist-on") if row.dist_on else None
        ceil = res.median(row.ceiling, "boto3") if row.ceiling else None
        yard = {"dist-off": doff, "dist-on": don, "best": max([x for x in (doff, don) if x is not None], default=None)}.get(
            row.yard or ""
        )
        r_dist = w / yard if (w is not None and yard) else None
        r_ceil = w / ceil if (w is not None and ceil) else None
        target, verdict = "", "—"
        if row.target:
            kind, f = row.target
            if kind == "ceiling":
                target = f"≥ {f:.0%} of ceiling"
                ratio = r_ceil
            elif kind == "dist":
                yard_name = {"dist-off": "Dist off", "dist-on": "Dist on", "best": "best Dist"}[row.yard or "best"]
                target = f"≥ {f:g}× {yard_name}"
                ratio = r_dist
            else:
                target = f"< {f:g} {row.unit}" + (" (worst)" if row.worst else "")
                ratio = None
            if w is None:
                verdict = "ERROR" if row.wharf and res.failed(row.wharf, "wharf") else "n/a"
            elif kind == "max":
                verdict = "PASS" if w < f else "MISS"
            elif ratio is None:
                verdict = "n/a"
            else:
                verdict = "PASS" if ratio >= f else "MISS"
        elif row.wharf and w is None and res.failed(row.wharf, "wharf"):
            verdict = "ERROR"
        out.append(
            {
                "measure": row.measure,
                "label": row.label,
                "unit": row.unit,
                "wharf": w,
                "dist_off": doff,
                "dist_on": don,
                "ceiling": ceil,
                "wharf_over_dist": r_dist,
                "wharf_over_ceiling": r_ceil,
                "target": target,
                "verdict": verdict,
                "aggregate": "worst" if row.worst else "median",
            }
        )
    return out


def print_table(table: list[dict[str, Any]], args: argparse.Namespace) -> None:
    heads = ["measurement", "unit", "Wharf", "Dist off", "Dist on", "boto3 ceil", "W/Dist", "W/ceil", "target", "verdict"]
    lines = []
    for t in table:
        lines.append(
            [
                t["label"],
                t["unit"],
                fmt(t["wharf"], t["unit"]),
                fmt(t["dist_off"], t["unit"]),
                fmt(t["dist_on"], t["unit"]),
                fmt(t["ceiling"], t["unit"]),
                f"{t['wharf_over_dist']:.2f}×" if t["wharf_over_dist"] is not None else "—",
                f"{t['wharf_over_ceiling']:.0%}" if t["wharf_over_ceiling"] is not None else "—",
                t["target"] or "(info)",
                t["verdict"],
            ]
        )
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(heads)]
    right = {2, 3, 4, 5, 6, 7}

    def render(cells: list[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    print()
    print(render(heads))
    print("  ".join("-" * w for w in widths))
    for x in lines:
        print(render(x))


def print_details(res: Results, args: argparse.Namespace) -> None:
    print()
    print(
        f"Medians of {args.repeat} repeat(s); MB = 10^6 bytes; 'Dist' = CNCF Distribution 2.8 with the S3 driver on the same SeaweedFS."
    )
    print(
        "W/Dist for pushes uses the better of the two Distributions; manifest rates are measured on Distribution (redirect off)."
    )
    print("Per-repeat values:")
    for measure, systems in res.values.items():
        for system, vals in systems.items():
            print(f"  {measure:<20} {system:<8} " + ", ".join(f"{v:,.1f}" for v in vals))
    rss = res.details.get("rss_push", {}).get("wharf", [])
    if rss:
        print("Wharf web processes (gunicorn master + 2 workers), summed RSS during the big push, per repeat:")
        for i, d in enumerate(rss, 1):
            print(
                f"  repeat {i}: baseline {d['baseline_mib']:.0f} MiB, peak {d['peak_mib']:.0f} MiB, growth {d['growth_mib']:.0f} MiB"
            )
    pushes = res.details.get("push_big", {})
    if pushes:
        print("Where the big push's time goes (wall s; CPU s of server / SeaweedFS / skopeo; Wharf's requests ≥ 200 ms):")
        for system, ds in pushes.items():
            for i, d in enumerate(ds, 1):
                slow = ""
                if d.get("slow_requests"):
                    slow = " | " + ", ".join(f"{m} {p} {s} {ms / 1000:.1f}s" for m, p, s, ms in d["slow_requests"][:6])
                print(
                    f"  {system:<8} r{i}: wall {d['wall_s']:.1f} | CPU server {d['server']['cpu_s']:.1f}, s3 {d['s3']['cpu_s']:.1f},"
                    f" skopeo {d['client_cpu_s']:.1f}{slow}"
                )
    shown = [("push_big", "big push"), ("push_small", "small-layer push"), ("pull_small", "small-layer pull (proxied)")]
    if any(res.details.get(m, {}).get("wharf") for m, _ in shown):
        print("Wharf's requests by route (last repeat; count × mean ms = summed ms, from gunicorn's access log):")
        for measure, title in shown:
            ds = res.details.get(measure, {}).get("wharf") or []
            if not ds or not ds[-1].get("wharf_requests"):
                continue
            parts = [
                f"{k}: {v['count']}×{v['mean_ms']:.0f} = {v['total_ms'] / 1000:.1f}s"
                for k, v in list(ds[-1]["wharf_requests"].items())[:6]
            ]
            print(f"  {title}: " + "; ".join(parts))
    if res.errors:
        print()
        print(f"FAILURES ({len(res.errors)}):")
        for e in res.errors:
            print(f"--- {e['system']} {e['measure']} (repeat {e['repeat']}):")
            print(indent(e["error"].strip()[-3000:]))
            if e.get("server_log"):
                print("    server log:")
                print(indent(e["server_log"].strip()[-3000:], 6))


def indent(text: str, n: int = 4) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except Exception as exc:
            return f"? ({exc})"

    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    return {
        "git": git + (" (dirty)" if dirty else ""),
        "python": platform.python_version(),
        "skopeo": first_line([harness.SKOPEO, "--version"]),
        "distribution": first_line([harness.DISTRIBUTION, "--version"]),
        "wrk": first_line([probes.WRK, "--version"]),
        "ab": first_line([probes.AB, "-V"]),
        "curl": first_line([probes.CURL, "--version"]),
        "weed": first_line([str(Path(sys.executable).parent / "weed"), "version"]),
    }


def write_json(res: Results, table: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> Path:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"results-{stamp}.json"
    doc = {
        "meta": meta,
        "args": vars(args),
        "table": table,
        "values": res.values,
        "details": res.details,
        "errors": res.errors,
    }
    path.write_text(json.dumps(doc, indent=1, default=str))
    return path


# --- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--big-mib", type=int, default=1024, help="size of the single-layer image's layer file (default 1024)")
    p.add_argument("--small-count", type=int, default=100, help="layers of the small-layer image (default 100)")
    p.add_argument("--small-kib", type=int, default=1024, help="size of each small layer's file in KiB (default 1024)")
    p.add_argument("--repeat", type=int, default=3, help="repeats of every measurement; the table shows medians (default 3)")
    p.add_argument("--wrk-seconds", type=int, default=10, help="duration of each wrk run (default 10; a 2 s warm-up precedes it)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--quick", action="store_true", help="smoke run: --big-mib 256 --small-count 30 --repeat 1")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument(
        "--distribution-auth", action="store_true", help="htpasswd auth on Distribution too (default: anonymous, its fastest)"
    )
    p.add_argument(
        "--wharf-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for Wharf's processes, e.g. GATEWAY_UPLOAD_INFLIGHT_PARTS=2 (repeatable)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, SeaweedFS data) for inspection")
    p.add_argument(
        "--out-dir", default=str(ROOT / "var" / "bench"), help="where results-<timestamp>.json goes (default var/bench)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.big_mib, args.small_count, args.repeat = 256, 30, 1
    bad_env = [e for e in args.wharf_env if "=" not in e or not e.split("=", 1)[0]]
    if bad_env:
        p.error(f"--wharf-env takes NAME=VALUE, got {bad_env[0]!r}")
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if args.repeat < 1 or args.big_mib < 1 or args.small_count < 1 or args.small_kib < 1:
        p.error("sizes and --repeat must be positive")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in (harness.SKOPEO, harness.DISTRIBUTION, probes.WRK, probes.AB, probes.CURL):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            print(f"bench: {tool} is missing; `make bench` installs it (deploy/install-system-deps.sh)", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    # Under var/bench (git-ignored), not /tmp/wharf-*: test runs on this machine sweep their own temp names.
    runs = ROOT / "var" / "bench"
    runs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"work-{dt.datetime.now():%Y%m%d-%H%M%S}-", dir=runs))
    lab = Lab(
        work,
        keep=args.keep,
        distribution_auth=args.distribution_auth,
        wharf_extra_env=dict(e.split("=", 1) for e in args.wharf_env),
    )
    res = Results()
    meta: dict[str, Any] = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "versions": versions(),
    }
    log(f"work directory {work}; cpus {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    code = 0
    status = "complete"
    try:
        lab.start(want_dist=bool({"dist-off", "dist-on"} & set(args.systems)))
        meta["redis_url"] = lab.redis_url
        meta["database_url"] = lab.db_url
        meta["notes"] = lab.notes
        Bench(lab, args, res).run()
    except KeyboardInterrupt:
        status, code = "interrupted", 130
        log("interrupted: cleaning up")
    except Exception:
        status, code = "crashed", 1
        log("the benchmark crashed:\n" + traceback.format_exc())
        if lab.wharf is not None and lab.wharf.proc is not None:
            log("Wharf's log tail:\n" + lab.wharf.log_tail(3000))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if res.values or res.errors:
                meta["status"] = status
                meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
                meta["loadavg_end"] = os.getloadavg()
                table = evaluate(res, args)
                print_table(table, args)
                print_details(res, args)
                path = write_json(res, table, args, meta)
                print(f"\nresults: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        except Exception:
            log("could not write the report:\n" + traceback.format_exc())
        log("stopping everything the benchmark started")
        lab.close()
        log("stopped.")
    if code == 0 and res.errors:
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())

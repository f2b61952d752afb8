"""The measurements: timed skopeo copies, curl downloads, wrk request rates, boto3's ceiling, /proc sampling."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e import harness

MiB = 1024 * 1024
MB = 1_000_000
WRK = "/usr/bin/wrk"
AB = "/usr/bin/ab"
CURL = "/usr/bin/curl"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


# --- /proc sampling ---------------------------------------------------------------------------------


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class GroupStats:
    baseline_rss: int = 0
    peak_rss: int = 0
    last_rss: int = 0
    cpu_first: dict[int, int] = field(default_factory=dict)
    cpu_last: dict[int, int] = field(default_factory=dict)

    @property
    def growth_rss(self) -> int:
        return self.peak_rss - self.baseline_rss

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_last[p] - self.cpu_first[p] for p in self.cpu_last if p in self.cpu_first) / TICK


class Sampler:
    """Every `interval` s: the summed RSS of each process group (pids re-listed each time) and its CPU time.

    Use as a context manager around the work; the first sample (taken synchronously on enter) is
    the baseline. Also measures the CPU time of our own waited-for children (skopeo, curl).
    """

    def __init__(self, groups: Mapping[str, Callable[[], list[int]]], interval: float = 0.2) -> None:
        self.groups = dict(groups)
        self.interval = interval
        self.stats = {name: GroupStats() for name in groups}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.wall = 0.0
        self.children_cpu = 0.0
        self.self_cpu = 0.0

    def _sample(self, first: bool = False) -> None:
        for name, pids_fn in self.groups.items():
            try:
                pids = pids_fn()
            except Exception:
                continue
            st = self.stats[name]
            rss = 0
            for pid in pids:
                rss += _rss_bytes(pid)
                ticks = _cpu_ticks(pid)
                if ticks is None:
                    continue
                if pid not in st.cpu_first:
                    st.cpu_first[pid] = ticks
                st.cpu_last[pid] = ticks
            if first:
                st.baseline_rss = rss
            st.peak_rss = max(st.peak_rss, rss)
            st.last_rss = rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._children0 = _children_cpu()
        self._self0 = _self_cpu()
        self._t0 = time.perf_counter()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        self.wall = time.perf_counter() - self._t0
        self.children_cpu = _children_cpu() - self._children0
        self.self_cpu = _self_cpu() - self._self0

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {
            "wall_s": round(self.wall, 3),
            "client_cpu_s": round(self.children_cpu, 2),
            "bench_process_cpu_s": round(self.self_cpu, 2),
        }
        for name, st in self.stats.items():
            out[name] = {
                "cpu_s": round(st.cpu_seconds, 2),
                "rss_baseline_mib": round(st.baseline_rss / MiB, 1),
                "rss_peak_mib": round(st.peak_rss / MiB, 1),
                "rss_growth_mib": round(st.growth_rss / MiB, 1),
            }
        return out


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --- skopeo -------------------------------------------------------------------------------------------


def skopeo_push(layout_ref: str, dest: str, creds: str | None, timeout: float = 3600) -> float:
    """`skopeo copy --preserve-digests oci:... docker://...`; returns the wall time in seconds."""
    args = [
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        *(["--dest-creds", creds] if creds else []),
        layout_ref,
        dest,
    ]
    t0 = time.perf_counter()
    harness.skopeo(*args, timeout=timeout)
    return time.perf_counter() - t0


def skopeo_pull(src: str, out_dir: Path, tag: str, creds: str | None, timeout: float = 3600) -> float:
    """`skopeo copy --preserve-digests docker://... oci:DIR:tag` into a fresh directory (deleted afterwards)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    args = [
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        *(["--src-creds", creds] if creds else []),
        src,
        f"oci:{out_dir}:{tag}",
    ]
    try:
        t0 = time.perf_counter()
        harness.skopeo(*args, timeout=timeout)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# --- curl ---------------------------------------------------------------------------------------------


@dataclass
class CurlResult:
    http_code: int
    size: int
    speed: float  # bytes/s, curl's %{speed_download}
    seconds: float
    redirects: int


def curl_download(url: str, *, creds: str | None, follow: bool, timeout: float = 1800) -> CurlResult:
    """Download `url` to /dev/null with curl; raise if the status is not 200."""
    argv = [
        CURL,
        "-sS",
        "-o",
        "/dev/null",
        "--max-time",
        str(int(timeout)),
        "-w",
        "%{http_code} %{size_download} %{speed_download} %{time_total} %{num_redirects}",
    ]
    if creds:
        argv += ["-u", creds]
    if follow:
        argv += ["-L"]
    argv.append(url)
    proc = harness.run_command(argv, timeout=timeout + 30)
    code, size, speed, total, redirects = proc.stdout.split()
    result = CurlResult(int(code), int(size), float(speed), float(total), int(redirects))
    if result.http_code != 200:
        raise RuntimeError(f"curl {url}: HTTP {result.http_code} after {result.redirects} redirect(s)")
    return result


# --- wrk ------------------------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = "{method}"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,\\"mean_us\\":%.1f}}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass
class WrkResult:
    rps: float
    requests: int
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float


def _lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk(
    url: str, *, method: str, headers: Mapping[str, str], connections: int, threads: int, seconds: int, script_dir: Path
) -> WrkResult:
    """wrk -c CONNECTIONS for SECONDS; errors (non-2xx/3xx, socket errors) are counted, not hidden."""
    lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    script = script_dir / f"wrk-{method.lower()}-{os.getpid()}.lua"
    script.write_text(_WRK_SCRIPT.format(method=method, headers=lines))
    proc = harness.run_command(
        [WRK, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s", "-s", str(script), url],
        timeout=seconds + 60,
    )
    m = re.search(r"WRKJSON (\{.*\})", proc.stdout)
    if not m:
        raise RuntimeError(f"no summary in wrk output:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    d = json.loads(m.group(1))
    errors = {k: int(d[k]) for k in ("connect", "read", "write", "status", "timeout") if int(d[k])}
    if not d["requests"]:
        raise RuntimeError(f"wrk completed no request in {seconds} s: {errors or 'no errors reported'}")
    rps = d["requests"] / (d["duration_us"] / 1e6)
    return WrkResult(rps, int(d["requests"]), errors, d["p50_us"] / 1000, d["p99_us"] / 1000)


def ab(url: str, *, head: bool, headers: Mapping[str, str], connections: int, seconds: int) -> WrkResult:
    """ApacheBench with keep-alive (-k), HEAD with -i. wrk 4.1 cannot do HEAD: its parser waits for the
    body that the Content-Length of a HEAD response announces."""
    argv = [AB, "-q", "-k", "-c", str(connections), "-t", str(seconds), "-n", "100000000", "-s", "10"]
    if head:
        argv.append("-i")
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    proc = harness.run_command([*argv, url], timeout=seconds + 60, check=False)
    out = proc.stdout

    def num(pattern: str, default: float | None = None) -> float:
        m = re.search(pattern, out)
        if m is None:
            if default is None:
                raise RuntimeError(f"unexpected ab output (exit {proc.returncode}):\n{out[-2000:]}\n{proc.stderr[-2000:]}")
            return default
        return float(m.group(1))

    complete = int(num(r"Complete requests:\s+(\d+)"))
    if not complete:
        raise RuntimeError(f"ab completed no request in {seconds} s:\n{out[-1500:]}\n{proc.stderr[-1500:]}")
    errors = {
        k: int(v)
        for k, v in (("failed", num(r"Failed requests:\s+(\d+)", 0)), ("status", num(r"Non-2xx responses:\s+(\d+)", 0)))
        if v
    }
    p50 = num(r"\n\s+50%\s+(\d+)", 0)
    p99 = num(r"\n\s+99%\s+(\d+)", 0)
    return WrkResult(num(r"Requests per second:\s+([\d.]+)"), complete, errors, p50, p99)


# --- boto3's ceiling ------------------------------------------------------------------------------------


def boto3_client(s3_env: Mapping[str, str], pool: int = 32):  # type: ignore[no-untyped-def]
    import boto3
    import botocore.config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3_env["AWS_S3_ENDPOINT_URL"],
        region_name=s3_env.get("AWS_S3_REGION_NAME", "us-east-1"),
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=pool,
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )


def boto3_upload(client, bucket: str, key: str, path: Path, *, part_size: int = 64 * MiB, concurrency: int = 10) -> float:  # type: ignore[no-untyped-def]
    """boto3's managed multipart upload (64 MiB parts); returns seconds."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=concurrency, use_threads=True
    )
    t0 = time.perf_counter()
    client.upload_file(str(path), bucket, key, Config=config)
    return time.perf_counter() - t0


def boto3_download(client, bucket: str, key: str, *, range_size: int = 16 * MiB, workers: int = 8) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Parallel ranged GETs of the whole object into a discarding sink; returns (seconds, bytes)."""
    t0 = time.perf_counter()
    size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    ranges = [(o, min(o + range_size, size) - 1) for o in range(0, size, range_size)]

    def fetch(r: tuple[int, int]) -> int:
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={r[0]}-{r[1]}")["Body"]
        n = 0
        try:
            while chunk := body.read(MiB):
                n += len(chunk)
        finally:
            body.close()
        return n

    with ThreadPoolExecutor(workers, thread_name_prefix="bench-get") as pool:
        got = sum(pool.map(fetch, ranges))
    seconds = time.perf_counter() - t0
    if got != size:
        raise RuntimeError(f"boto3 ranged download got {got} of {size} bytes")
    return seconds, got


def boto3_delete(client, bucket: str, keys: Iterable[str]) -> None:  # type: ignore[no-untyped-def]
    for key in keys:
        client.delete_object(Bucket=bucket, Key=key)


# --- gunicorn access log ------------------------------------------------------------------------------

_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) (?P<bytes>\S+) (?P<ms>\d+)ms')


def slow_requests(log_text: str, min_ms: int = 100) -> list[tuple[str, str, int, int]]:
    """(method, path, status, ms) of the access-log lines that took at least min_ms."""
    out = []
    for line in log_text.splitlines():
        m = _ACCESS.search(line)
        if m and int(m.group("ms")) >= min_ms:
            path = re.sub(r"^/v2/[^/]+/[^/]+/", "", m.group("path"))  # /v2/<tenant>/<repo>/blobs/... -> blobs/...
            path = re.sub(r"sha256:[0-9a-f]{64}", "sha256:…", path)
            path = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", path)
            out.append((m.group("method"), path.split("?")[0], int(m.group("status")), int(m.group("ms"))))
    return out


def _route(path: str) -> str:
    path = path.split("?")[0]
    path = re.sub(r"^/v2/[^/]+/[^/]+(?:/[^/]+)*?/(blobs|manifests|tags|referrers)/", r"\1/", path)
    path = re.sub(r"sha256:[0-9a-f]{64}", "<digest>", path)
    path = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", path)
    return re.sub(r"^manifests/[^/<]+$", "manifests/<tag>", path)


def request_breakdown(log_text: str) -> dict[str, dict[str, float]]:
    """Per 'METHOD route status': how many requests, their summed and mean duration (gunicorn's %(M)s)."""
    acc: dict[str, list[int]] = {}
    for line in log_text.splitlines():
        m = _ACCESS.search(line)
        if m:
            acc.setdefault(f"{m.group('method')} {_route(m.group('path'))} {m.group('status')}", []).append(int(m.group("ms")))
    return {
        k: {"count": len(v), "total_ms": sum(v), "mean_ms": round(sum(v) / len(v), 1), "max_ms": max(v)}
        for k, v in sorted(acc.items(), key=lambda kv: -sum(kv[1]))
    }


def request_counts(log_text: str) -> dict[str, int]:
    """How many requests per 'METHOD status' the access log shows."""
    counts: dict[str, int] = {}
    for line in log_text.splitlines():
        m = _ACCESS.search(line)
        if m:
            k = f"{m.group('method')} {m.group('status')}"
            counts[k] = counts.get(k, 0) + 1
    return counts


def error_lines(log_text: str, limit: int = 60) -> str:
    """A gunicorn log without its successful access lines: tracebacks, warnings, 4xx/5xx requests."""
    keep = []
    for line in log_text.splitlines():
        m = _ACCESS.search(line)
        if m and m.group("status")[0] in "23":
            continue
        keep.append(line)
    return "\n".join(keep[-limit:])

"""The web tier's gunicorn worker: gthread with slow-client defences in front of the threads (docs/decisions/0010).

- Request headers are read in the worker's event loop, non-blocking, against a deadline
  (GATEWAY_HTTP_HEADER_TIMEOUT_SECONDS, 408 after it); a thread only ever gets a connection
  whose headers have arrived, so slow headers cost a socket, not a thread.
- Requests without a body run on reserved threads of their own (GATEWAY_WEB_RESERVED_THREADS):
  however many bodies are being read, /healthz and pulls keep answering.
- Every recv of a body is bounded by `transport.BodyClock` (an idle timeout, and a minimum
  average rate after a grace period): a too-slow body fails with BodyTimeout, a malformed or
  cut chunked body with BodyInvalid, both Django BadRequests that the registry maps to OCI errors.
- A response announces keep-alive only when the request body was read to its end (after a
  small, bounded drain); otherwise `Connection: close`. gunicorn itself drains at most 64 KiB
  *after* announcing keep-alive and then drops the connection the client was told to reuse.
- Connections are closed without blocking the event loop (a lingering close, in the loop).

Plain HTTP/1.1 only: TLS terminates in front of Wharf (the load balancer), and h2c stays off.
"""

from __future__ import annotations

import ctypes
import errno
import json
import re
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.http.errors import NoMoreData, ParseException
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

from gateway.core.transport import BodyClock, BodyError, BodyInvalid, BodyLimits

# A request has a body when it says so: a non-zero Content-Length or any Transfer-Encoding.
_HAS_BODY = re.compile(rb"\r\n(?:content-length[ \t]*:[ \t]*0*[1-9]|transfer-encoding[ \t]*:)", re.IGNORECASE)
_HEAD_END = b"\r\n\r\n"
# An HTTP/1 request starts with its method (upper-case letters) or a stray empty line (RFC 9112 §2.2).
_REQUEST_FIRST_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n")
# For bytes that are no HTTP/1 at all: a TLS ClientHello from a client trying https before http
# (skopeo, podman, containerd with TLS verification off) must fail at once, not at the header deadline.
_NOT_HTTP_RESPONSE = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
# An unread body is drained before the response when it is this small and arrives this fast;
# otherwise the response says `Connection: close`.
DRAIN_MAX_BYTES = 256 * 1024
DRAIN_SECONDS = 2.0
# A closed connection is read (and discarded) for this long / this much, so the client reads our
# answer instead of a reset (RFC 9112 section 9.6), in the event loop.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 8 * 1024 * 1024
# glibc serves allocations from this size up with mmap and returns them to the OS when freed.
# Left dynamic, the threshold rises to the largest block freed so far (up to 32 MiB): MiB-sized
# part and read buffers then come from per-thread arenas, which fragment and never shrink.
MMAP_THRESHOLD = 512 * 1024
_M_MMAP_THRESHOLD = -3


def _pin_mmap_threshold() -> None:
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {"errors": [{"code": "UNKNOWN", "message": f"request headers were not received within {seconds:g} s"}]}
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class GuardedUnreader(SocketUnreader):
    """gunicorn's socket reader, with every recv bounded by the connection's BodyClock."""

    def __init__(self, sock: socket.socket, clock: BodyClock) -> None:
        super().__init__(sock)
        self.clock = clock

    def chunk(self, size_hint: int | None = None) -> bytes:
        self.sock.settimeout(self.clock.next_timeout())
        started = time.monotonic()
        try:
            data = super().chunk(size_hint)
        except TimeoutError:
            self.clock.count(0, time.monotonic() - started)
            raise self.clock.timeout_error() from None
        self.clock.count(len(data), time.monotonic() - started)
        return data


class Input:
    """environ["wsgi.input"]: gunicorn's body, with broken framing and vanished clients as BodyInvalid."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except BodyError:
            raise
        except (ParseException, NoMoreData, ConnectionError) as exc:
            raise BodyInvalid(f"invalid request body: {type(exc).__name__} {exc}".strip()[:200]) from None

    def read(self, size: int | None = None) -> bytes:
        return self._call(self._body.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._call(self._body.readline, size)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return self._call(self._body.readlines, hint)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def drain_body(req: Any, clock: BodyClock) -> bool:
    """Read what the application left of the request body, within DRAIN_*; True when it ended."""
    body = getattr(req, "body", None)
    if body is None:
        return True
    if getattr(body, "failed", False):
        return False
    left = getattr(body.reader, "length", None)
    if left is not None and left > DRAIN_MAX_BYTES:
        return False
    clock.drain_deadline = time.monotonic() + DRAIN_SECONDS
    drained = 0
    try:
        while drained <= DRAIN_MAX_BYTES:
            data = body.read(64 * 1024)
            if not data:
                return True
            drained += len(data)
        return False
    except Exception:  # a broken or stalled body: the connection cannot be reused
        return False
    finally:
        clock.drain_deadline = None


class _Conn(gthread.TConn):
    """A connection with its pre-read header bytes and its body clock."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any, limits: BodyLimits) -> None:
        super().__init__(cfg, sock, client, server)
        self.clock = BodyClock(limits)
        self.head = bytearray()
        self.scanned = 0
        self.has_body = False
        self.lingered = 0

    def init(self) -> None:
        fresh = not self.initialized
        super().init()
        if fresh:
            self.parser.unreader = GuardedUnreader(self.sock, self.clock)
        if self.head:
            self.parser.unreader.unread(bytes(self.head))
            self.head = bytearray()
            self.scanned = 0


def _recv(conn: _Conn) -> bytes | None:
    """What a non-blocking socket has for us: None when nothing yet, b"" at its end (or on an error)."""
    try:
        return conn.sock.recv(64 * 1024)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


class WharfWorker(gthread.ThreadWorker):
    """gthread, with headers read in the event loop, reserved threads for body-less requests and bounded body reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heading: dict[_Conn, float] = {}  # reading headers in the loop → deadline
        self.lingering: dict[_Conn, float] = {}  # closing → deadline
        self.light_pool: futures.ThreadPoolExecutor | None = None
        cfg = self.cfg
        fields = (cfg.limit_request_fields or 100) * (cfg.limit_request_field_size or 8190)
        self.max_head = (cfg.limit_request_line or 1024 * 1024) + fields + 4  # beyond this gunicorn refuses (431)

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl or cfg.http2_cleartext != "off":
            raise RuntimeError("WharfWorker serves plain HTTP/1.1: terminate TLS in front of it and leave h2c off")

    def init_process(self) -> None:
        _pin_mmap_threshold()
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        from django.conf import settings  # the application is loaded: settings are configured

        self.header_seconds = float(settings.GATEWAY_HTTP_HEADER_TIMEOUT_SECONDS)
        self.limits = BodyLimits(
            idle_seconds=float(settings.GATEWAY_HTTP_BODY_IDLE_TIMEOUT_SECONDS),
            min_rate=float(settings.GATEWAY_HTTP_BODY_MIN_RATE_BYTES),
            grace_seconds=float(settings.GATEWAY_HTTP_BODY_GRACE_SECONDS),
        )
        self.timeout_response = _timeout_response(self.header_seconds)
        self.light_pool = futures.ThreadPoolExecutor(
            max_workers=settings.GATEWAY_WEB_RESERVED_THREADS, thread_name_prefix="light"
        )
        self.wsgi: Callable[..., Iterable[bytes]] = self._wrap(self.wsgi)

    def _wrap(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            resp = getattr(start_response, "__self__", None)
            req = getattr(resp, "req", None)
            clock = getattr(getattr(req, "unreader", None), "clock", None)
            if req is None or clock is None:
                return app(environ, start_response)
            environ["wsgi.input"] = Input(environ["wsgi.input"])

            def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
                if not drain_body(req, clock) and resp is not None:
                    resp.force_close()  # before the headers go out: they will say `Connection: close`
                req.unreader.sock.settimeout(None)  # reads are bounded; the response is written as gthread does
                return start_response(status, headers, exc_info)

            return app(environ, respond)

        return application

    # --- headers, in the loop ---------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._await_head(_Conn(self.cfg, sock, addr, listener.getsockname(), self.limits))

    def on_client_socket_readable(self, conn: _Conn, client: socket.socket) -> None:
        """A kept-alive connection sends its next request: its headers are read in the loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)
        self._read_head(conn, client)

    def _await_head(self, conn: _Conn) -> None:
        conn.sock.setblocking(False)
        self.heading[conn] = time.monotonic() + self.header_seconds
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_head, conn))

    def _read_head(self, conn: _Conn, _sock: object = None) -> None:
        if conn not in self.heading:
            return
        data = _recv(conn)
        if data is None:
            return
        if not data:
            self._unwatch(self.heading, conn)
            self._close(conn)
            return
        conn.head += data
        self._head_check(conn)

    def _head_check(self, conn: _Conn) -> None:
        """Hand the connection to a thread once its headers are in (or too long, for gunicorn to refuse); refuse non-HTTP at once."""
        if conn.head[:1] and conn.head[0] not in _REQUEST_FIRST_BYTES:
            self._unwatch(self.heading, conn)
            try:
                conn.sock.send(_NOT_HTTP_RESPONSE)
            except OSError:
                pass
            self._linger(conn)
            return
        end = conn.head.find(_HEAD_END, max(0, conn.scanned - 3))
        conn.scanned = len(conn.head)
        if end < 0 and len(conn.head) <= self.max_head:
            return
        self._unwatch(self.heading, conn)
        conn.has_body = end >= 0 and _HAS_BODY.search(conn.head, 0, end + 2) is not None
        conn.data_ready = True
        conn.clock.restart()  # a fresh allowance for anything the thread must still read of the headers
        self.enqueue_req(conn)

    def enqueue_req(self, conn: _Conn) -> None:
        """Requests with a body on the main pool, the rest on the reserved threads."""
        pool = self.tpool if conn.has_body or self.light_pool is None else self.light_pool
        fs = pool.submit(self.handle, conn)
        fs.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def handle_request(self, req: Any, conn: _Conn) -> bool:
        conn.clock.restart()
        return super().handle_request(req, conn)

    def finish_request(self, conn: _Conn, fs: futures.Future) -> None:
        try:
            result = fs.result() if not fs.cancelled() else False
        except Exception:
            result = False
        if result is gthread._DEFER:
            super().finish_request(conn, fs)
            return
        if not result:
            self._linger(conn)
            return
        leftover = conn.parser.unreader.take_buffered()
        if leftover:  # the client pipelined its next request: read the rest of its headers in the loop
            conn.head = bytearray(leftover)
            conn.scanned = 0
            self._await_head(conn)
            self._head_check(conn)
            return
        conn.sock.setblocking(False)
        conn.set_timeout()
        if not self.alive:
            conn.timeout = min(conn.timeout, time.monotonic() + gthread.STOP_KEEPALIVE_LINGER)
        self.keepalived_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    # --- closing, in the loop ---------------------------------------------------------------------

    def _linger(self, conn: _Conn) -> None:
        """Close after sending FIN, discarding what the client still sends for a moment (no reset)."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        self.lingering[conn] = time.monotonic() + LINGER_SECONDS
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_linger, conn))

    def _read_linger(self, conn: _Conn, _sock: object = None) -> None:
        while True:
            data = _recv(conn)
            if data is None:
                return
            conn.lingered += len(data)
            if not data or conn.lingered > LINGER_MAX_BYTES:
                self._unwatch(self.lingering, conn)
                self._close(conn)
                return

    def _unwatch(self, watched: dict[_Conn, float], conn: _Conn) -> None:
        watched.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _close(self, conn: _Conn) -> None:
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Also: answer 408 to headers past their deadline, and finish lingering closes."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, d in self.heading.items() if d <= now]:
            self._unwatch(self.heading, conn)
            self.log.info("request headers from %s not received within %gs: 408", conn.client, self.header_seconds)
            try:
                conn.sock.send(self.timeout_response)
            except OSError:
                pass
            self._linger(conn)
        for conn in [c for c, d in self.lingering.items() if d <= now]:
            self._unwatch(self.lingering, conn)
            self._close(conn)

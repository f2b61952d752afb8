"""gunicorn for the web process: gthread workers, since request bodies are streamed in threads.

The worker class is gthread's with slow-client defences (headers read in the event loop with a
deadline, bounded body reads, reserved threads for body-less requests, honest keep-alive):
gateway/core/http_worker.py, docs/decisions/0010. Its knobs are Django settings (GATEWAY_HTTP_*).
"""

import os

bind = os.environ.get("GATEWAY_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
worker_class = "gateway.core.http_worker.WharfWorker"
workers = int(os.environ.get("GATEWAY_WEB_WORKERS", "2"))
threads = int(os.environ.get("GATEWAY_WEB_THREADS", "16"))
# Large blobs stream for minutes; the worker heartbeat is separate from request time in gthread.
timeout = int(os.environ.get("GATEWAY_WEB_TIMEOUT", "600"))
graceful_timeout = 30
keepalive = 75
max_requests = int(os.environ.get("GATEWAY_WEB_MAX_REQUESTS", "0"))
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
forwarded_allow_ips = os.environ.get("GATEWAY_FORWARDED_ALLOW_IPS", "127.0.0.1")


def worker_exit(server, worker):
    """Log the most upload memory this worker held, for sizing GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES."""
    try:
        from gateway.registry.streaming import upload_budget_stats
    except Exception:  # the application never loaded
        return
    stats = upload_budget_stats()
    if stats is not None:
        server.log.info("upload memory budget (pid %s): peak %d, in use %d, limit %d bytes", worker.pid, *stats)


def post_worker_init(worker):
    """Move everything loading the application created out of the cyclic collector's reach (gc.freeze).

    A loaded Django process holds a few hundred thousand long-lived objects; without this every
    full collection walks them all, a pause of tens of milliseconds in the middle of some request.
    """
    import gc

    gc.collect()
    gc.freeze()

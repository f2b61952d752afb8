"""gunicorn for the web process: gthread workers, since request bodies are streamed in threads."""

import os

bind = os.environ.get("GATEWAY_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
worker_class = "gthread"
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

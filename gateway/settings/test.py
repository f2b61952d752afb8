"""Tests: the machine's PostgreSQL and Redis when they answer, else embedded ones.

SeaweedFS is started per test session by tests/conftest.py, which points GATEWAY_S3 at it.
"""

import os

from gateway import embedded

# Decide the service addresses before base.py reads them.
if "DATABASE_URL" not in os.environ:
    os.environ["DATABASE_URL"] = embedded.machine_postgres_url() or embedded.test_postgres_url()
if "REDIS_URL" not in os.environ:
    os.environ["REDIS_URL"] = (embedded.machine_redis_url() or embedded.test_redis_url()).replace("/0", "/9")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")

from gateway.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; production uses the default

# A database per test process, so concurrent runs on one machine never share one.
DATABASES["default"]["TEST"] = {"NAME": f"test_wharf_{os.getpid()}"}  # noqa: F405

# Token signing keys: var/token-keys unless configured; a key is generated on first use.
# (tests/accounts point it at a temporary directory per test where keys are rotated.)
if GATEWAY_TOKEN_KEYS_DIR is None:  # noqa: F405
    GATEWAY_TOKEN_KEYS_DIR = VAR_DIR / "token-keys"  # noqa: F405
GATEWAY_TOKEN_KEYS_AUTOCREATE = True

# Secrets at rest: a fixed test-only key (child processes derive the same one).
if not GATEWAY_ENCRYPTION_KEY:  # noqa: F405
    GATEWAY_ENCRYPTION_KEY = "wharf-test-only-encryption-key-0123456789"
GATEWAY_OUTBOUND_ALLOW_PRIVATE = True  # tests deliver webhooks and replicate to servers on 127.0.0.1

# The admin API's rate limits stay out of the way of the suite (tests/api/test_throttling.py sets small ones).
GATEWAY_API_RATE_READ = GATEWAY_API_RATE_WRITE = GATEWAY_API_RATE_ANONYMOUS = 1_000_000
# WebAuthn over the live server's plain http (browser tests).
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True

# The live test server serves the dashboard's static files straight from static/ and the apps (no
# collectstatic in the suite; `make run` and the image collect them into STATIC_ROOT).
WHITENOISE_USE_FINDERS = True

"""Settings shared by every environment. Values come from the environment only (see env.py)."""

from __future__ import annotations

from gateway.settings import env as E
from gateway.settings import social, storj_prices
from gateway.settings.env import BASE_DIR, VAR_DIR

DEBUG = E.boolean("DJANGO_DEBUG", False)
SECRET_KEY = E.raw("DJANGO_SECRET_KEY") or ""  # production.py refuses an empty one
PORT = E.integer("PORT", 8000, minimum=1, maximum=65535)

REGISTRY_DOMAIN = E.domain("GATEWAY_REGISTRY_DOMAIN", f"127.0.0.1:{PORT}")
# The URL clients reach us at (behind a proxy this differs from what the request says).
EXTERNAL_URL = E.url("GATEWAY_EXTERNAL_URL", f"http://{REGISTRY_DOMAIN}", schemes=("http", "https")).rstrip("/")
ALLOWED_HOSTS = E.hostnames(
    "DJANGO_ALLOWED_HOSTS", f"127.0.0.1,localhost,.{REGISTRY_DOMAIN.split(':')[0]},{REGISTRY_DOMAIN.split(':')[0]}"
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc files, served by us (no CDN)
    "django_filters",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.github",
    "gateway.core",
    "accounts",
    "gateway.registry",
    "billing",
    "gateway.webhooks",
    "gateway.replication",
    "gateway.dashboard",
]

MIDDLEWARE = [
    "gateway.core.middleware.RequestIdMiddleware",
    # Right below the request id: an uncaught error under /v2/ or /auth/token becomes a JSON 500.
    "gateway.core.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # allauth.usersessions' activity tracking, written at most once a minute per session (docs/decisions/0042).
    "gateway.dashboard.middleware.UserSessionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Registry paths look like /v2/acme/app/manifests/1 — never redirect them to add a slash.
APPEND_SLASH = False

ROOT_URLCONF = "gateway.urls"
WSGI_APPLICATION = "gateway.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "gateway.dashboard.context.dashboard",
            ]
        },
    }
]

DATABASES = {"default": E.database("DATABASE_URL", None)}
DATABASES["default"]["CONN_MAX_AGE"] = E.integer("GATEWAY_DB_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = E.url("REDIS_URL", None, schemes=("redis", "rediss", "unix"))
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

CELERY_BROKER_URL = E.url("CELERY_BROKER_URL", REDIS_URL, schemes=("redis", "rediss", "unix"))
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# Blob store (S3 API; Storj's gateway in production). Names as django-storages spells them.
GATEWAY_S3 = {
    "endpoint_url": E.url("AWS_S3_ENDPOINT_URL", "https://gateway.storjshare.io", schemes=("http", "https")),
    "access_key": E.string("AWS_ACCESS_KEY_ID", ""),
    "secret_key": E.string("AWS_SECRET_ACCESS_KEY", ""),
    "bucket": E.string("AWS_STORAGE_BUCKET_NAME", "wharf"),
    "region": E.string("AWS_S3_REGION_NAME", "us-1"),
    "addressing_style": E.choice("AWS_S3_ADDRESSING_STYLE", "path", ("path", "virtual")),
    "part_size": E.integer("GATEWAY_S3_PART_SIZE", 64 * 1024 * 1024, minimum=5 * 1024 * 1024, maximum=5 * 1024**3),
    "max_pool": E.integer("GATEWAY_S3_MAX_POOL", 32, minimum=1, maximum=500),
    "storj_guard": E.boolean("GATEWAY_S3_STORJ_GUARD", False),
}
# Full parts uploading while the next fills, per upload: memory ≈ (1 + this) × part size.
GATEWAY_UPLOAD_INFLIGHT_PARTS = E.integer("GATEWAY_UPLOAD_INFLIGHT_PARTS", 1, minimum=1, maximum=8)
# Per tenant: open (active) upload sessions, and bytes of carried tails (sub-part remainders) they
# may hold; beyond either a push gets 429 TOOMANYREQUESTS (decisions/0012).
GATEWAY_UPLOAD_MAX_SESSIONS = E.integer("GATEWAY_UPLOAD_MAX_SESSIONS", 100, minimum=1, maximum=100_000)
GATEWAY_UPLOAD_MAX_TAIL_BYTES = E.integer("GATEWAY_UPLOAD_MAX_TAIL_BYTES", 256 * 1024 * 1024, minimum=5 * 1024 * 1024)
# A carried tail larger than this is kept in a per-session object, not in PostgreSQL.
GATEWAY_UPLOAD_TAIL_DB_MAX_BYTES = E.integer("GATEWAY_UPLOAD_TAIL_DB_MAX_BYTES", 256 * 1024, minimum=0, maximum=5 * 1024 * 1024)
# Bytes of part buffers one web process holds across all its uploads; an upload waits (and stops
# reading its socket) while the budget is used up, GATEWAY_UPLOAD_MEMORY_WAIT_SECONDS at most, then 503.
GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES = E.integer(
    "GATEWAY_UPLOAD_MEMORY_BUDGET_BYTES",
    max(256 * 1024 * 1024, GATEWAY_S3["part_size"]),
    minimum=GATEWAY_S3["part_size"],
    hint="one part, GATEWAY_S3_PART_SIZE",
)
GATEWAY_UPLOAD_MEMORY_WAIT_SECONDS = E.integer("GATEWAY_UPLOAD_MEMORY_WAIT_SECONDS", 120, minimum=1, maximum=3600)

# --- Slow clients (gateway/core/http_worker.py, the gunicorn worker; decisions/0010) ---
# Request headers must be complete this long after the connection opens (or the first byte of a
# kept-alive connection's next request); else 408.
GATEWAY_HTTP_HEADER_TIMEOUT_SECONDS = E.integer("GATEWAY_HTTP_HEADER_TIMEOUT_SECONDS", 20, minimum=1, maximum=600)
# A request body may pause this long at most, and must average this many bytes per second of
# waiting once the grace period has passed; else 408 and the connection is closed.
GATEWAY_HTTP_BODY_IDLE_TIMEOUT_SECONDS = E.integer("GATEWAY_HTTP_BODY_IDLE_TIMEOUT_SECONDS", 30, minimum=1, maximum=3600)
GATEWAY_HTTP_BODY_MIN_RATE_BYTES = E.integer("GATEWAY_HTTP_BODY_MIN_RATE_BYTES", 1024, minimum=1, maximum=1024**3)
GATEWAY_HTTP_BODY_GRACE_SECONDS = E.integer("GATEWAY_HTTP_BODY_GRACE_SECONDS", 30, minimum=1, maximum=3600)
# Threads per web process for requests without a body, on top of GATEWAY_WEB_THREADS (which read
# bodies): uploads, slow or not, never take the threads health checks and pulls need.
GATEWAY_WEB_RESERVED_THREADS = E.integer("GATEWAY_WEB_RESERVED_THREADS", 4, minimum=1, maximum=64)
# Presigned blob URLs (tenants with redirect downloads) live this long.
GATEWAY_PRESIGN_SECONDS = E.integer("GATEWAY_PRESIGN_SECONDS", 900, minimum=60, maximum=7 * 24 * 3600)

# --- Garbage collection, retention, upload sweep (gateway/registry/services/{gc,retention,cleanup}.py; decisions/0007) ---
# GC deletes a blob or manifest only after it has been unreferenced this long (0 only in tests).
GATEWAY_GC_GRACE_SECONDS = E.integer("GATEWAY_GC_GRACE_SECONDS", 24 * 3600, minimum=0, maximum=90 * 24 * 3600)
# Rows deleted per transaction, and objects per DeleteObjects request (at most 1000 keys; docs/storj.md §2).
GATEWAY_GC_BATCH_SIZE = E.integer("GATEWAY_GC_BATCH_SIZE", 500, minimum=1, maximum=1000)
# Batches one task invocation processes before it re-queues itself (bounds a task's run time).
GATEWAY_GC_MAX_BATCHES = E.integer("GATEWAY_GC_MAX_BATCHES", 50, minimum=1, maximum=100_000)
# Upload sessions idle this long are aborted; multipart uploads with no session this old are aborted.
GATEWAY_UPLOAD_IDLE_TIMEOUT_SECONDS = E.integer(
    "GATEWAY_UPLOAD_IDLE_TIMEOUT_SECONDS", 24 * 3600, minimum=60, maximum=30 * 24 * 3600
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
# The dashboard's own CSS/JS and vendored third-party files (static/vendor/README.md: versions, licences).
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- The dashboard (gateway/dashboard, templates/; docs/decisions/0029) ---
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:home"
# django-allauth: username or email to log in; the rest of its settings live with the accounts pages.
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = E.choice("GATEWAY_EMAIL_VERIFICATION", "mandatory", ("mandatory", "optional", "none"))
# Content-Security-Policy (django-csp): nothing inline, nothing from elsewhere; htmx and our JS are files under /static/.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Accounts: django-allauth's pages under /accounts/ (gateway/dashboard/adapters.py; docs/decisions/0030) ---
ACCOUNT_ADAPTER = "gateway.dashboard.adapters.AccountAdapter"
ACCOUNT_FORMS = {"login": "gateway.dashboard.forms.accounts.LoginForm"}
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Wharf] "
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False  # the link opens a page with a button (mail scanners follow links)
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
# A changed password ends every session, this one too (the adapter also revokes `docker login` refresh tokens).
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_LOGOUT_ON_GET = False
# Sign-up, change and reset refuse short, common, all-digit and name-like passwords.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if EXTERNAL_URL.startswith("https:") else "http"
# allauth's own limits stay on; only `login_failed` is ours: failed dashboard passwords count in
# accounts.ratelimit, the same per-(account, address) and per-address windows as /auth/token (decisions/0009).
ACCOUNT_RATE_LIMITS = {"login_failed": None}
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
# Multi-factor: TOTP with recovery codes, and WebAuthn security keys / passkeys (allauth.mfa).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = "Wharf"
# WebAuthn needs a secure origin; plain http is accepted only where local/test settings say so.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = False
# The sessions page (/accounts/sessions/): allauth.usersessions records device, address and last seen.
USERSESSIONS_TRACK_ACTIVITY = True
# Sign-in with OpenID Connect or GitHub, offered only when the environment configures it (settings/social.py).
SOCIALACCOUNT_PROVIDERS = social.providers_from_env()
# The provider's "Continue" form redirects to the provider: CSP form-action covers redirects (decisions/0038).
CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] += social.form_action_origins(SOCIALACCOUNT_PROVIDERS)
SOCIALACCOUNT_ADAPTER = "gateway.dashboard.adapters.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never join an existing account by an email the provider asserts
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
# Mail to files (the live test server; tests/browser/mail.py reads them) when DJANGO_EMAIL_BACKEND is the file backend.
EMAIL_FILE_PATH = E.string("DJANGO_EMAIL_FILE_PATH", str(VAR_DIR / "mail"))

LOG_FORMAT = E.choice("GATEWAY_LOG_FORMAT", "text", ("text", "json"))
LOG_LEVEL = E.choice("GATEWAY_LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "gateway.core.logging.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "gateway.core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "gateway.api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "gateway.api.exception_handler.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}
# Admin API rate limits (gateway/api/throttling.py; docs/decisions/0021): requests per window, per token
# (or session) for reads and for writes, and per client address for requests that name nobody.
GATEWAY_API_RATE_WINDOW_SECONDS = E.integer("GATEWAY_API_RATE_WINDOW_SECONDS", 60, minimum=1, maximum=86400)
GATEWAY_API_RATE_READ = E.integer("GATEWAY_API_RATE_READ", 1200, minimum=1)
GATEWAY_API_RATE_WRITE = E.integer("GATEWAY_API_RATE_WRITE", 300, minimum=1)
GATEWAY_API_RATE_ANONYMOUS = E.integer("GATEWAY_API_RATE_ANONYMOUS", 120, minimum=1)
# Idempotency-Key (gateway/api/idempotency.py): how long a response is replayed, and how long an
# unanswered claim blocks retries (409) if its process dies.
GATEWAY_API_IDEMPOTENCY_TTL_SECONDS = E.integer("GATEWAY_API_IDEMPOTENCY_TTL_SECONDS", 24 * 3600, minimum=60)
GATEWAY_API_IDEMPOTENCY_LOCK_SECONDS = E.integer("GATEWAY_API_IDEMPOTENCY_LOCK_SECONDS", 300, minimum=5)
# The admin API's OpenAPI document (docs/api/openapi.yaml; `make api-schema` regenerates it; decisions/0019).
SPECTACULAR_SETTINGS = {
    "TITLE": "Wharf admin API",
    "DESCRIPTION": "Manage tenants, tokens and (soon) everything else a tenant admin or operator manages.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Tokens may carry every scope, robots all but `admin`: two enums, named here (import paths, read lazily).
    "ENUM_NAME_OVERRIDES": {
        "TokenScopeEnum": "accounts.models.TokenScope.choices",
        "RobotScopeEnum": "gateway.api.views.robots.ROBOT_SCOPES",
        "JobStateEnum": "gateway.api.views.jobs.STATE_CHOICES",
        "JobKindEnum": "gateway.api.views.jobs.KIND_CHOICES",
        "JobStartKindEnum": "gateway.api.views.jobs.START_CHOICES",
        "WebhookDeliveryStateEnum": "gateway.api.views.webhooks.DELIVERY_STATES",
        "StatusEnum": "accounts.models.Tenant.Status",  # a tenant's: the name it had before subscriptions had a status too
        "SubscriptionStatusEnum": "billing.models.Subscription.Status",
        "InvoiceStatusEnum": "gateway.api.views.invoices.ISSUED_STATUSES",
        "AdminInvoiceStatusEnum": "billing.models.Invoice.Status",  # staff's: drafts too
    },
    # Every operation's error responses (problem+json) and RateLimit-* headers, added globally (decisions/0021),
    # and the OpenAPI links between operations (create → update → revoke), which drf-spectacular cannot declare (gateway/api/links.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gateway.api.schema.problem_responses",
        "gateway.api.links.postprocess_links",
    ],
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024  # manifests are at most 4 MiB

# --- Registry token auth (accounts/tokens.py, accounts/ratelimit.py; docs/decisions/0006) ---
# A directory of ES256 (EC P-256) PEM private keys: the newest file signs, all verify. Relative
# paths are taken from the checkout. local/test default to var/token-keys; production requires it.
_token_keys_dir = E.string("GATEWAY_TOKEN_KEYS_DIR", "").strip()
GATEWAY_TOKEN_KEYS_DIR = (BASE_DIR / _token_keys_dir) if _token_keys_dir else None
# Generate a key on first use when the directory has none (local and test only).
GATEWAY_TOKEN_KEYS_AUTOCREATE = False
# The JWT `iss` claim; the registry accepts only tokens with this issuer.
GATEWAY_TOKEN_ISSUER = E.string("GATEWAY_TOKEN_ISSUER", EXTERNAL_URL).strip() or EXTERNAL_URL
GATEWAY_TOKEN_TTL_SECONDS = E.integer("GATEWAY_TOKEN_TTL_SECONDS", 300, minimum=60, maximum=3600)
GATEWAY_REFRESH_TOKEN_DAYS = E.integer("GATEWAY_REFRESH_TOKEN_DAYS", 30, minimum=1, maximum=365)
# Failed passwords allowed per window before /auth/token and Basic on /v2/ answer 429: one account from one
# client address (…_ACCOUNT), and one address over all accounts (…_IP); never per account alone (decisions/0009).
GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT = E.integer("GATEWAY_LOGIN_MAX_FAILURES_ACCOUNT", 10, minimum=1, maximum=100_000)
GATEWAY_LOGIN_MAX_FAILURES_IP = E.integer("GATEWAY_LOGIN_MAX_FAILURES_IP", 30, minimum=1, maximum=100_000)
GATEWAY_LOGIN_WINDOW_SECONDS = E.integer("GATEWAY_LOGIN_WINDOW_SECONDS", 300, minimum=1, maximum=86_400)

# --- Integrity audit, replication, webhooks (gateway/replication, gateway/webhooks; docs/decisions/0008) ---
# Secrets at rest (storage-target keys, webhook secrets) are Fernet-encrypted with a key derived
# from this. Production requires it; local/test settings fall back to a dev-only value.
GATEWAY_ENCRYPTION_KEY = E.string("GATEWAY_ENCRYPTION_KEY", "")
# Comma-separated former keys, still accepted for decryption while secrets are re-encrypted.
GATEWAY_ENCRYPTION_KEYS_PREVIOUS = [k.strip() for k in E.string("GATEWAY_ENCRYPTION_KEYS_PREVIOUS", "").split(",") if k.strip()]
# Each object is HEADed (existence, size, ETag) about once per this many hours.
GATEWAY_AUDIT_INTERVAL_HOURS = E.integer("GATEWAY_AUDIT_INTERVAL_HOURS", 24, minimum=1, maximum=24 * 90)
# Objects per audit batch; a periodic run re-queues itself at most GATEWAY_AUDIT_MAX_REQUEUES times.
GATEWAY_AUDIT_BATCH_SIZE = E.integer("GATEWAY_AUDIT_BATCH_SIZE", 500, minimum=1, maximum=100_000)
GATEWAY_AUDIT_MAX_REQUEUES = E.integer("GATEWAY_AUDIT_MAX_REQUEUES", 20, minimum=0, maximum=10_000)
# Share of checked objects that are also downloaded and re-hashed (flagged objects always are).
GATEWAY_AUDIT_SAMPLE_RATE = E.fraction("GATEWAY_AUDIT_SAMPLE_RATE", 0.001)
# Egress budget of one audit run for sampled re-hashing, in bytes (Storj bills egress, docs/storj.md §10).
GATEWAY_AUDIT_DEEP_BYTES_PER_RUN = E.integer("GATEWAY_AUDIT_DEEP_BYTES_PER_RUN", 1024**3, minimum=0, maximum=2**62)
# S3 requests per second one audit or replication run may make (Storj: 100/s per project, shared with traffic; docs/storj.md §9).
GATEWAY_JOB_S3_REQUESTS_PER_SECOND = E.integer("GATEWAY_JOB_S3_REQUESTS_PER_SECOND", 25, minimum=1, maximum=10_000)
# A background job (GC, retention, upload sweep, audit, replication) that has not beaten its heart for this
# long is closed as failed ("abandoned") by the periodic jobs-close-stale task; its work is idempotent.
GATEWAY_JOB_STALE_SECONDS = E.integer("GATEWAY_JOB_STALE_SECONDS", 1800, minimum=60, maximum=7 * 86_400)
# Objects per replication sweep batch (backfill, enqueue, replica verification).
GATEWAY_REPLICATION_BATCH_SIZE = E.integer("GATEWAY_REPLICATION_BATCH_SIZE", 500, minimum=1, maximum=100_000)
# Attempts per object before the periodic sweep stops retrying it (`manage.py replicate` still does).
GATEWAY_REPLICATION_MAX_ATTEMPTS = E.integer("GATEWAY_REPLICATION_MAX_ATTEMPTS", 10, minimum=1, maximum=1000)
# A tenant's replication is reported unhealthy when its oldest unreplicated object is older than this.
GATEWAY_REPLICATION_LAG_ALERT_SECONDS = E.integer("GATEWAY_REPLICATION_LAG_ALERT_SECONDS", 3600, minimum=60, maximum=30 * 86_400)
GATEWAY_WEBHOOK_TIMEOUT_SECONDS = E.integer("GATEWAY_WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
GATEWAY_WEBHOOK_MAX_ATTEMPTS = E.integer("GATEWAY_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=50)
# Let webhooks and replication targets reach private, loopback, link-local, CGNAT and IPv6
# transition (NAT64/6to4/Teredo/IPv4-mapped) addresses (gateway/core/netpolicy.py). Off in
# production (SSRF); on by default in local settings and in tests; self-hosted on a private network may turn it on.
GATEWAY_OUTBOUND_ALLOW_PRIVATE = E.boolean("GATEWAY_OUTBOUND_ALLOW_PRIVATE", False)
# Tenant invitations (docs/decisions/0022): how long an emailed invitation can be accepted.
GATEWAY_INVITATION_DAYS = E.integer("GATEWAY_INVITATION_DAYS", 7, minimum=1, maximum=90)
# Tenant deletion: rows or bucket objects per batch, batches per task invocation (it re-queues itself).
GATEWAY_TENANT_DELETE_BATCH_SIZE = E.integer("GATEWAY_TENANT_DELETE_BATCH_SIZE", 500, minimum=1, maximum=1000)
GATEWAY_TENANT_DELETE_MAX_BATCHES = E.integer("GATEWAY_TENANT_DELETE_MAX_BATCHES", 50, minimum=1, maximum=100_000)

# Outgoing mail (invitations): SMTP where configured; `make run` prints mails to its log instead (local.py).
EMAIL_BACKEND = E.string("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = E.string("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = E.integer("DJANGO_EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = E.string("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = E.string("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = E.boolean("DJANGO_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = E.string("DJANGO_DEFAULT_FROM_EMAIL", f"Wharf <noreply@{REGISTRY_DOMAIN.split(':')[0]}>")

# Billing (docs/decisions/0039): the plan code every new tenant is subscribed to, in the transaction that
# creates it. The hosted service sets "free"; empty (self-hosted gateways, `make run`) = no subscription, unlimited.
GATEWAY_BILLING_DEFAULT_PLAN = E.string("GATEWAY_BILLING_DEFAULT_PLAN", "").strip()

# Payments: the provider, Stripe's keys, the dunning grace period (gateway/settings/billing.py; decisions/0045).
from gateway.settings.billing import *  # noqa: E402,F403
from gateway.settings.billing import stripe_form_action_origins  # noqa: E402

# Subscribing and "Payment methods" are forms whose answer redirects to Stripe's pages: form-action covers redirects.
CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] += stripe_form_action_origins()

# Invoices (docs/decisions/0044): who issues them, the prefix of their numbers ("WHARF-000001") and the sequence they
# are numbered in (letters and digits, at most 32); another value starts its own sequence at 1.
GATEWAY_BILLING_INVOICE_ISSUER = E.string("GATEWAY_BILLING_INVOICE_ISSUER", "WHARF").strip().upper()

# Storj's price table (gateway/settings/storj_prices.py; docs/decisions/0048): what each tenant's data costs at the
# storage provider. GATEWAY_STORJ_PRICING = "2026" | "legacy", and GATEWAY_STORJ_PRICE_* / _MIN_* override its figures.
GATEWAY_STORJ_PRICES = storj_prices.prices_from_env()

# Benchmarks only (bench/pull_limits.py's baseline, docs/decisions/0047): false records no registry event at all —
# no metering, replication or webhooks. Never set it on a server that bills or replicates.
GATEWAY_EVENTS_RECORD = E.boolean("GATEWAY_EVENTS_RECORD", True)

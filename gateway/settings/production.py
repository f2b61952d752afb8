"""Production: every secret comes from the environment, with no default."""

from django.core.exceptions import ImproperlyConfigured

from gateway.settings.base import *  # noqa: F403

SECRET_KEY = E.required("DJANGO_SECRET_KEY", "a long random string")  # noqa: F405
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 32 characters long.")
E.required("DATABASE_URL")  # noqa: F405
E.required("REDIS_URL")  # noqa: F405
E.required("AWS_ACCESS_KEY_ID")  # noqa: F405
E.required("AWS_SECRET_ACCESS_KEY")  # noqa: F405

LOG_FORMAT = E.choice("GATEWAY_LOG_FORMAT", "json", ("text", "json"))  # noqa: F405
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405
# Dashboard sessions and CSRF: cookies only over HTTPS, never readable by scripts (docs/decisions/0030).
SESSION_COOKIE_SECURE = E.boolean("GATEWAY_SECURE_COOKIES", True)  # noqa: F405
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Links in mails (verification, password reset) are https; WebAuthn only on a secure origin.
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = False

# Registry token signing keys: required, never generated here (manage.py token_key_create).
E.required("GATEWAY_TOKEN_KEYS_DIR", "a directory of ES256 PEM private keys; create one with `manage.py token_key_create`")  # noqa: F405
GATEWAY_TOKEN_KEYS_AUTOCREATE = False

# Secrets at rest (storage-target keys, webhook secrets): required, no default.
GATEWAY_ENCRYPTION_KEY = E.required("GATEWAY_ENCRYPTION_KEY", "a random string of at least 32 characters")  # noqa: F405
if len(GATEWAY_ENCRYPTION_KEY) < 32:
    raise ImproperlyConfigured("GATEWAY_ENCRYPTION_KEY must be at least 32 characters long.")

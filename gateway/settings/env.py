"""The one place that reads the process environment.

Every value is parsed strictly: a bad value stops start-up with a message that names the
variable, what it expected and what it got (django-environ alone would read
`DJANGO_DEBUG=maybe` as False without a word).

Where a variable is unset, addresses of the embedded services that `make run` started are
taken from `var/services.json`, so `manage.py` in another terminal reaches the same
database, Redis and S3 as the running service.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("GATEWAY_VAR_DIR", BASE_DIR / "var"))
SERVICES_FILE = VAR_DIR / "services.json"

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?$")


def _embedded() -> dict[str, str]:
    try:
        data = json.loads(SERVICES_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


_EMBEDDED = _embedded()


def raw(name: str, default: str | None = None) -> str | None:
    """The variable's text: the environment first, then var/services.json, then default."""
    if name in os.environ:
        return os.environ[name]
    return _EMBEDDED.get(name, default)


def required(name: str, hint: str = "") -> str:
    value = raw(name)
    if value is None or value == "":
        raise ImproperlyConfigured(f"{name} must be set{': ' + hint if hint else ''}.")
    return value


def string(name: str, default: str) -> str:
    value = raw(name, default)
    return default if value is None else value


def boolean(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0, yes/no, on/off), got {value!r}.")


def integer(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None, hint: str = "") -> int:
    value = raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        n = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}.") from None
    if minimum is not None and n < minimum or maximum is not None and n > maximum:
        if maximum is None:
            raise ImproperlyConfigured(f"{name} must be at least {minimum}{hint and ' (' + hint + ')'}, got {n}.")
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {n}.")
    return n


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (raw(name) or default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return value


def url(name: str, default: str | None, *, schemes: tuple[str, ...]) -> str:
    value = raw(name, default)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set to a URL ({'/'.join(schemes)}).")
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ImproperlyConfigured(f"{name} must be a {' or '.join(schemes)} URL, got scheme {parts.scheme!r} in {value!r}.")
    if not parts.netloc and not parts.path:
        raise ImproperlyConfigured(f"{name} has no host: {value!r}.")
    return value


def database(name: str, default: str | None) -> dict:
    value = url(name, default, schemes=("postgres", "postgresql", "pgsql"))
    try:
        config = environ.Env.db_url_config(value)
    except Exception as exc:  # django-environ raises several kinds on malformed URLs
        raise ImproperlyConfigured(f"{name} is not a valid PostgreSQL URL: {exc}") from None
    if str(config.get("HOST", "")).startswith("%2F"):  # a Unix socket directory, percent-encoded
        from urllib.parse import unquote

        config["HOST"] = unquote(config["HOST"])
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user@host:5432/wharf.")
    return config


def hostnames(name: str, default: str) -> list[str]:
    value = raw(name, default) or ""
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    for h in hosts:
        if h not in ("*",) and not h.startswith(".") and not _HOST_RE.match(h.lower()) and not _is_ip(h):
            raise ImproperlyConfigured(f"{name} has an invalid host name {h!r}.")
    return hosts


def domain(name: str, default: str) -> str:
    value = (raw(name, default) or "").strip().lower()
    if not _HOST_RE.match(value) and not _is_ip(value.split(":")[0]):
        raise ImproperlyConfigured(f"{name} must be a host name (optionally with :port), got {value!r}.")
    return value


def _is_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def fraction(name: str, default: float) -> float:
    """A number from 0 to 1 inclusive (a rate or probability), e.g. 0.001."""
    value = raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        n = float(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number from 0 to 1, got {value!r}.") from None
    if not 0.0 <= n <= 1.0:  # also refuses nan
        raise ImproperlyConfigured(f"{name} must be a number from 0 to 1, got {value!r}.")
    return n

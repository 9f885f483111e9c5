"""Settings for dnsaudit, driven by environment variables.

Defaults give the embedded mode: SQLite under ``var/``, tasks in a thread of the web process, DEBUG on.
Set ``DATABASE_URL`` and ``REDIS_URL`` for PostgreSQL and Celery workers; set ``DNSAUDIT_PRODUCTION=1``
for production defaults (DEBUG off, secure cookies, keys required) that pass ``manage.py check --deploy``.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dnsaudit.core.sso import SsoConfigError, sso_settings

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DNSAUDIT_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file and the dev encryption key live here


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"environment variable {name} is required")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


PRODUCTION = env_bool("DNSAUDIT_PRODUCTION", False)
DEBUG = env_bool("DEBUG", not PRODUCTION)

DEV_SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"
#: Placeholders that must never be a production SECRET_KEY (the development key, .env.example's value).
KNOWN_SECRET_KEYS = frozenset({DEV_SECRET_KEY, "change-me-to-a-long-random-string"})


def production_secret_key(value: str | None) -> str:
    """``SECRET_KEY`` as production accepts it: set, not a known placeholder, long and random enough
    (the same bar as ``check --deploy``: 50 characters, 5 distinct ones, not ``django-insecure-``)."""
    how = "generate one with python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    if not value:
        raise ImproperlyConfigured(f"SECRET_KEY is required in production: {how}")
    if value in KNOWN_SECRET_KEYS or value.startswith("django-insecure-") or "change-me" in value:
        raise ImproperlyConfigured(f"SECRET_KEY is a development or example placeholder: {how}")
    if len(value) < 50 or len(set(value)) < 5:
        raise ImproperlyConfigured(
            f"SECRET_KEY is too weak for production (at least 50 characters, 5 distinct): {how}"
        )
    return value


if PRODUCTION:
    SECRET_KEY = production_secret_key(os.environ.get("SECRET_KEY"))
else:
    SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "clusters",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "clusters.access.ApiTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its page
]

ROOT_URLCONF = "dnsaudit.urls"
WSGI_APPLICATION = "dnsaudit.wsgi.application"

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
                "clusters.access.roles_context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'dnsaudit.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several threads (web + in-process scans) write; wait instead of failing on a busy database.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out username+address before checking
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "clusters:fleet"
LOGOUT_REDIRECT_URL = "login"

# --- Single sign-on (OpenID Connect, dnsaudit/oidc.py): off unless DNSAUDIT_OIDC_ISSUER, DNSAUDIT_OIDC_CLIENT_ID
# and DNSAUDIT_OIDC_CLIENT_SECRET are all set; then DNSAUDIT_OIDC_GROUPS_CLAIM and DNSAUDIT_OIDC_ROLE_MAP map the
# provider's groups to roles, and its backend comes after django-axes' and ModelBackend.
try:
    _SSO = sso_settings(os.environ)
except SsoConfigError as _error:
    raise ImproperlyConfigured(str(_error)) from None
globals().update(_SSO)
DNSAUDIT_OIDC_ENABLED = bool(_SSO["DNSAUDIT_OIDC_ENABLED"])
if DNSAUDIT_OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("dnsaudit.oidc.OidcBackend")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # collectstatic fills it in production; whitenoise wants it to exist
WHITENOISE_USE_FINDERS = DEBUG  # development serves static/ without collectstatic
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Celery: a broker means real workers; none means scans run in a thread of this process.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("DNSAUDIT_VISIBILITY_TIMEOUT", 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
DNSAUDIT_SCAN_SOFT_TIME_LIMIT = env_int("DNSAUDIT_SCAN_SOFT_TIME_LIMIT", 1800)
DNSAUDIT_SCAN_TIME_LIMIT = env_int("DNSAUDIT_SCAN_TIME_LIMIT", 1900)
# Worker-wide limits too: the prefork pool only arms its timeout handler for limits it knows at start.
CELERY_TASK_SOFT_TIME_LIMIT = DNSAUDIT_SCAN_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = DNSAUDIT_SCAN_TIME_LIMIT
# A running scan whose heartbeat is older than this is declared dead by the reaper.
DNSAUDIT_SCAN_STALE_AFTER = env_int("DNSAUDIT_SCAN_STALE_AFTER", 300)
DNSAUDIT_SCAN_QUEUED_TIMEOUT = env_int("DNSAUDIT_SCAN_QUEUED_TIMEOUT", 3600)
DNSAUDIT_KEEP_SCANS = env_int("DNSAUDIT_KEEP_SCANS", 10)
# Audit log retention (clusters.auditlog): events older than this many days are deleted; 0 keeps them all.
DNSAUDIT_AUDIT_RETENTION_DAYS = env_int("DNSAUDIT_AUDIT_RETENTION_DAYS", 365)
if DNSAUDIT_AUDIT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("DNSAUDIT_AUDIT_RETENTION_DAYS must be 0 (keep forever) or a number of days")
DNSAUDIT_IMAGE_CONCURRENCY = env_int("DNSAUDIT_IMAGE_CONCURRENCY", 8)
DNSAUDIT_REGISTRY_TIMEOUT = env_int("DNSAUDIT_REGISTRY_TIMEOUT", 15)
# Seconds a verdict inferred because the registry was unreachable is reused (0: never cached); then the
# registry is tried again (once per scan). Confirmed verdicts, by digest, never expire.
DNSAUDIT_INFERRED_VERDICT_TTL = env_int("DNSAUDIT_INFERRED_VERDICT_TTL", 3600)
# One image inspection (dnsaudit.boundary.registry.RegistryLimits): a deadline that stops it (its sockets are
# shut down), and what a registry can make a worker read.
DNSAUDIT_REGISTRY_DEADLINE = env_int("DNSAUDIT_REGISTRY_DEADLINE", 180)
DNSAUDIT_REGISTRY_MAX_MANIFEST_BYTES = env_int("DNSAUDIT_REGISTRY_MAX_MANIFEST_BYTES", 4 * 1024 * 1024)
DNSAUDIT_REGISTRY_MAX_LAYER_BYTES = env_int("DNSAUDIT_REGISTRY_MAX_LAYER_BYTES", 1024 * 1024 * 1024)
DNSAUDIT_REGISTRY_MAX_TAR_ENTRIES = env_int("DNSAUDIT_REGISTRY_MAX_TAR_ENTRIES", 500_000)
DNSAUDIT_REGISTRY_MAX_TAR_HEADER_BYTES = env_int("DNSAUDIT_REGISTRY_MAX_TAR_HEADER_BYTES", 1024 * 1024)
for _name in ("DEADLINE", "MAX_MANIFEST_BYTES", "MAX_LAYER_BYTES", "MAX_TAR_ENTRIES", "MAX_TAR_HEADER_BYTES"):
    if globals()[f"DNSAUDIT_REGISTRY_{_name}"] <= 0:
        raise ImproperlyConfigured(f"DNSAUDIT_REGISTRY_{_name} must be a positive integer")
DNSAUDIT_PROBE_TIMEOUT = env_int("DNSAUDIT_PROBE_TIMEOUT", 2)
DNSAUDIT_KUBE_RETRY_BACKOFF = float(env_str("DNSAUDIT_KUBE_RETRY_BACKOFF", "0.5"))
DNSAUDIT_EXEC_BUDGET = env_int("DNSAUDIT_EXEC_BUDGET", 120)
# What one Kubernetes API server may make a scan read (dnsaudit.boundary.kube.KubeLimits).
DNSAUDIT_KUBE_MAX_RESPONSE_BYTES = env_int("DNSAUDIT_KUBE_MAX_RESPONSE_BYTES", 32 * 1024 * 1024)
DNSAUDIT_KUBE_RESPONSE_TIME_LIMIT = env_int("DNSAUDIT_KUBE_RESPONSE_TIME_LIMIT", 120)
DNSAUDIT_KUBE_MAX_LIST_PAGES = env_int("DNSAUDIT_KUBE_MAX_LIST_PAGES", 2000)
DNSAUDIT_KUBE_MAX_LIST_ITEMS = env_int("DNSAUDIT_KUBE_MAX_LIST_ITEMS", 500_000)
if (
    min(DNSAUDIT_KUBE_MAX_RESPONSE_BYTES, DNSAUDIT_KUBE_RESPONSE_TIME_LIMIT) < 1
    or min(DNSAUDIT_KUBE_MAX_LIST_PAGES, DNSAUDIT_KUBE_MAX_LIST_ITEMS) < 1
):
    raise ImproperlyConfigured("DNSAUDIT_KUBE_MAX_* and DNSAUDIT_KUBE_RESPONSE_TIME_LIMIT must be at least 1")
# Keep a running scan going when the broker connection drops (Celery 6 flips this default).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BEAT_SCHEDULE = {
    "dispatch-periodic-scans": {"task": "clusters.tasks.dispatch_periodic_scans", "schedule": 60.0},
    "reap-dead-scans": {"task": "clusters.tasks.reap_dead_scans", "schedule": 60.0},
}

# --- Secrets at rest: comma-separated Fernet keys, newest first (MultiFernet rotation).
DNSAUDIT_FERNET_KEYS = env_list("DNSAUDIT_FERNET_KEYS", [])
_FERNET_HOW = "generate one with python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
if PRODUCTION and not DNSAUDIT_FERNET_KEYS:
    raise ImproperlyConfigured(f"DNSAUDIT_FERNET_KEYS is required in production: {_FERNET_HOW}")
if PRODUCTION:
    from cryptography.fernet import Fernet

    for _position, _key in enumerate(DNSAUDIT_FERNET_KEYS, 1):
        try:
            Fernet(_key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"DNSAUDIT_FERNET_KEYS: key {_position} is not a Fernet key (32 url-safe base64 bytes): {_FERNET_HOW}"
            ) from None
DNSAUDIT_KUBECONFIG_MAX_BYTES = env_int("DNSAUDIT_KUBECONFIG_MAX_BYTES", 1024 * 1024)
DNSAUDIT_METRICS_TOKEN = os.environ.get("DNSAUDIT_METRICS_TOKEN", "")

# --- Notifications (clusters/notify.py): apprise URLs, comma-separated (a cluster's own URLs, set in its
# settings, override them); the dashboard's address for the link in each message (no link when unset);
# seconds one message may take (socket timeouts and the wait for every target).
DNSAUDIT_NOTIFY_URLS = env_list("DNSAUDIT_NOTIFY_URLS", [])
DNSAUDIT_BASE_URL = os.environ.get("DNSAUDIT_BASE_URL", "").strip().rstrip("/")
if DNSAUDIT_BASE_URL and not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", DNSAUDIT_BASE_URL):
    raise ImproperlyConfigured(
        f"DNSAUDIT_BASE_URL={DNSAUDIT_BASE_URL!r} is not an http(s) address such as https://dnsaudit.example.com"
    )
DNSAUDIT_NOTIFY_TIMEOUT = env_int("DNSAUDIT_NOTIFY_TIMEOUT", 10)
if not 1 <= DNSAUDIT_NOTIFY_TIMEOUT <= 300:
    raise ImproperlyConfigured("DNSAUDIT_NOTIFY_TIMEOUT must be between 1 and 300 seconds")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # lockouts (WARNING) logged; every login attempt is in the admin
    },
}

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_REDIRECT_EXEMPT = [r"^health$"]  # container healthchecks speak plain HTTP
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Behind a reverse proxy: only when DNSAUDIT_TRUSTED_PROXY says one sits in front and overwrites
# X-Forwarded-Proto and appends to X-Forwarded-For. Without it (gunicorn published directly, as in
# docker-compose.yml) a client could claim https or any address with those headers.
DNSAUDIT_TRUSTED_PROXY = env_bool("DNSAUDIT_TRUSTED_PROXY", False)
if DNSAUDIT_TRUSTED_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Login throttling (django-axes): after DNSAUDIT_LOGIN_FAILURE_LIMIT failed logins for one username
# from one address, that pair is locked out for DNSAUDIT_LOGIN_LOCKOUT_MINUTES (0: until an admin runs
# ``manage.py axes_reset`` / ``axes_reset_username NAME``). A success resets the count.
AXES_FAILURE_LIMIT = env_int("DNSAUDIT_LOGIN_FAILURE_LIMIT", 5)
DNSAUDIT_LOGIN_LOCKOUT_MINUTES = env_int("DNSAUDIT_LOGIN_LOCKOUT_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1 or DNSAUDIT_LOGIN_LOCKOUT_MINUTES < 0:
    raise ImproperlyConfigured(
        "DNSAUDIT_LOGIN_FAILURE_LIMIT must be at least 1 and DNSAUDIT_LOGIN_LOCKOUT_MINUTES at least 0"
    )
AXES_COOLOFF_TIME = (
    timedelta(minutes=DNSAUDIT_LOGIN_LOCKOUT_MINUTES) if DNSAUDIT_LOGIN_LOCKOUT_MINUTES else None
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "clusters.access.lockout_response"  # registration/locked_out.html, 429
AXES_CLIENT_IP_CALLABLE = "clusters.access.client_ip"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no start-up banner on every manage.py command; failures and lockouts are still logged

# --- Content-Security-Policy (django-csp): scripts, styles and everything else from this origin only;
# no inline script or style, no eval (htmx is configured for it in base.html), no framing, forms post
# here only. The HTML export is a download (Content-Disposition: attachment) and carries its own styles.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

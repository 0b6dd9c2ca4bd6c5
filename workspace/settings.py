"""Django settings, read from environment variables.

Development defaults need no configuration: SQLite in var/, a local-memory
cache and a fixed development encryption key. With DEBUG=0 every secret must
be given explicitly, and `manage.py check --deploy` passes.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from workspace.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", default=True)

_DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-in-production-0123456789"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

# Fernet key (32 url-safe base64-encoded bytes) that encrypts upstream
# credentials at rest. Generate one with:
#   python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
_DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM="
CREDENTIAL_ENCRYPTION_KEY = env_str(
    "CREDENTIAL_ENCRYPTION_KEY", _DEV_ENCRYPTION_KEY if DEBUG else ""
)
if not CREDENTIAL_ENCRYPTION_KEY:
    raise ImproperlyConfigured(
        "CREDENTIAL_ENCRYPTION_KEY must be set when DEBUG is off."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tables2",
    "template_partials",
    "workspace",
    "genai_apps",
    "insights",
    "gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "workspace.middleware.MethodNotAllowedPageMiddleware",
]

ROOT_URLCONF = "workspace.urls"

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
                "workspace.context_processors.current_project",
            ],
        },
    },
]

WSGI_APPLICATION = "workspace.wsgi.application"
ASGI_APPLICATION = "workspace.asgi.application"

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the dashboard read while the gateway's event writer commits.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The insights pages group up to about 100,000 rollup rows per query. With
    # PostgreSQL's default 4MB those sorts spill to disk and take twice as long.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c work_mem={env_str('DATABASE_WORK_MEM', '32MB')}"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHE_URL = env_str("CACHE_URL", "locmem://")
if CACHE_URL.startswith("redis://") or CACHE_URL.startswith("rediss://"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "aiw"),
        }
    }
elif CACHE_URL.startswith("locmem://"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": CACHE_URL.removeprefix("locmem://") or "aiw",
        }
    }
else:
    raise ImproperlyConfigured(
        f"CACHE_URL={CACHE_URL!r} is not supported; use locmem:// or redis://host:port/db."
    )

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))

DJANGO_TABLES2_TEMPLATE = "tables/table.html"
DJANGO_TABLES2_TABLE_ATTRS = {"class": "table"}

# Gateway: seconds before an upstream call is abandoned and recorded as a timeout.
GATEWAY_UPSTREAM_TIMEOUT = env_float("GATEWAY_UPSTREAM_TIMEOUT", 120.0)
# Request bodies above this many bytes get a 413 before anything is forwarded.
GATEWAY_MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 32 * 1024 * 1024)
# Gateway usage writer: seconds between batch writes, records per early write,
# records kept while the database is unavailable, and seconds spent flushing
# at shutdown. See gateway/recorder.py for what can be lost.
GATEWAY_FLUSH_INTERVAL = env_float("GATEWAY_FLUSH_INTERVAL", 1.0)
GATEWAY_FLUSH_BATCH_SIZE = env_int("GATEWAY_FLUSH_BATCH_SIZE", 500)
GATEWAY_BUFFER_MAX_EVENTS = env_int("GATEWAY_BUFFER_MAX_EVENTS", 100_000)
GATEWAY_SHUTDOWN_FLUSH_TIMEOUT = env_float("GATEWAY_SHUTDOWN_FLUSH_TIMEOUT", 10.0)
# Seconds one batch write may take before it is abandoned and retried (a
# writer process that does not reply by then is killed and replaced).
GATEWAY_WRITE_TIMEOUT = env_float("GATEWAY_WRITE_TIMEOUT", 30.0)
# Storage of usage batches: "process" (a writer process per worker, started
# with this niceness) or "thread" (a thread of the worker). See
# gateway/writer_process.py for why a process is the default.
GATEWAY_USAGE_WRITER = env_str("GATEWAY_USAGE_WRITER", "process")
if GATEWAY_USAGE_WRITER not in ("process", "thread"):
    raise ImproperlyConfigured(
        f"GATEWAY_USAGE_WRITER is {GATEWAY_USAGE_WRITER!r}; "
        "set it to 'process' or 'thread'."
    )
GATEWAY_WRITER_NICE = env_int("GATEWAY_WRITER_NICE", 5)

# Dotted path of the module that gives the mapping review its usage figures:
# key_usage_since(project_ids, since) and application_last_traffic(project_ids).
# genai_apps may not import insights, so the review loads it by name.
MAPPING_REVIEW_USAGE_SOURCE = env_str(
    "MAPPING_REVIEW_USAGE_SOURCE", "insights.review_usage"
)

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Joining the browsers' HSTS preload list is a decision for the owner
        # of the domain and hard to undo, so it is off unless asked for.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SECURE_CONTENT_TYPE_NOSNIFF = True

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ai-workspace@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {
        "permission_denied": {
            "()": "workspace.log_filters.PermissionDeniedWithoutTraceback"
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives "django" a console handler of its own
        # (with DEBUG on) and lets it propagate to the root too, so every
        # warning was printed twice.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"filters": ["permission_denied"]},
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every gateway upstream call at INFO; uvicorn's access log
        # already has one line per call.
        "httpx": {"level": "WARNING"},
    },
}

"""Django settings for PAM Hybrid: every value comes from the environment (django-environ).

Each setting has an embedded default so a fresh checkout runs with nothing set; README's
configuration table documents them all.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

# Lets admin and other generic Django classes be subscripted for type checking (ModelAdmin[Model]).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG: bool = env.bool("DEBUG", default=False)

if DEBUG:
    SECRET_KEY: str = env.str("SECRET_KEY", default="django-insecure-dev-only-key-never-use-in-production")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (or set DEBUG=true for development).")

ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. Production defaults (DEBUG off) are strict, so `manage.py check --deploy` is clean; a deployment that must
# also answer plain HTTP turns them off explicitly. Behind a TLS-terminating proxy, set SECURE_PROXY_SSL_HEADER
# to the header it sets, e.g. "HTTP_X_FORWARDED_PROTO,https".
SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE: bool = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE: bool = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD: bool = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
_proxy_ssl_header: list[str] = env.list("SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) if len(_proxy_ssl_header) == 2 else None
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "pam_hybrid",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Static files are answered here, inside the two above so they carry nosniff and the CSP too, before anything
    # else runs for them; a path outside the static files (e.g. a traversal) is a plain 404.
    "pam_project.staticfiles.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): a username that fails AXES_FAILURE_LIMIT times from one IP address is locked out
# for AXES_COOLOFF_MINUTES, on /accounts/login/ and /admin/login/ alike (both go through authenticate()); a success
# before that clears its count. Failures are stored in the database, so every server process sees them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED: bool = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT: int = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# The address is REMOTE_ADDR (django-ipware is not installed). Behind deploy/nginx.conf, daphne runs with
# --proxy-headers and nginx overwrites X-Forwarded-For with the client's own address, so REMOTE_ADDR is the client's;
# behind a proxy that does not, it is the proxy's, and the lock falls on the username tried from anywhere behind it.

# Content-Security-Policy (django-csp 4): the pages run only their own script and style files, never inline code or
# eval, so whatever model output or user text might smuggle into the page cannot run. connect-src 'self' covers the
# chat socket too (CSP Level 3 lets 'self' match ws:/wss: on the page's own host and port). The admin needs no more.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

ROOT_URLCONF = "pam_project.urls"

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
            ],
        },
    },
]

ASGI_APPLICATION = "pam_project.asgi.application"
WSGI_APPLICATION = None

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Persistent connections: reconnecting on every ORM call cost more CPU per answer than the writes themselves.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the streaming writes and page reads of several connections proceed without "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"]["timeout"] = 20
    # A file, not memory, so a real server process started by the tests can share the test database.
    # One file per test process, so concurrent test runs do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}

REDIS_URL: str = env.str("REDIS_URL", default="")
# Redis connections per server process: the app's pool (breakers, claims, limits, socket seats), the channel layer's
# pool, and how long a command waits for a free connection of its pool before Redis counts as unavailable.
PAM_REDIS_CONNECTIONS: int = env.int("PAM_REDIS_CONNECTIONS", default=200)
PAM_REDIS_LAYER_CONNECTIONS: int = env.int("PAM_REDIS_LAYER_CONNECTIONS", default=100)
PAM_REDIS_POOL_TIMEOUT_MS: int = env.int("PAM_REDIS_POOL_TIMEOUT_MS", default=5000)
if REDIS_URL:
    # redis-py 8 defaults socket_timeout to 5 s, which cuts channels-redis's blocking read of a consumer's
    # channel: every socket was closed with 1011 about 5 s after it connected (django/channels_redis#422).
    # Each process has its own pools (README: "Redis connections"): the channel layer's and the app's, each of a fixed
    # size, where a command waits up to PAM_REDIS_POOL_TIMEOUT_MS for a free connection instead of failing at once.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "pam_hybrid.redis_client.ChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "max_connections": PAM_REDIS_LAYER_CONNECTIONS,
                "pool_timeout_s": PAM_REDIS_POOL_TIMEOUT_MS / 1000,
            },
        }
    }
    # Nothing of the app uses the cache today; its pool is bounded and blocking all the same.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"pool_class": "redis.BlockingConnectionPool", "max_connections": 10,
                        "timeout": PAM_REDIS_POOL_TIMEOUT_MS / 1000},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Static files are served by WhiteNoise (see MIDDLEWARE). With DEBUG they come straight from the source
# directories, re-read on each request; without it only from STATIC_ROOT, filled by `manage.py collectstatic`
# (with gzip copies). Names are not content-hashed: the vendored scripts' ES-module imports and source-map
# comments would have to be rewritten for that; WhiteNoise lets browsers cache them 60 s, then revalidate.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # One JSON object per line: the record's fields (logged as `extra`) plus these, the time in UTC.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["levelname", "name", "message"],
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "answers": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "loggers": {
        "pam_hybrid": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # One JSON line per answer (pam_hybrid.observability.answer_log), whatever LOG_LEVEL says.
        "pam_hybrid.answers": {"handlers": ["answers"], "level": "INFO", "propagate": False},
        # The SDKs' HTTP clients log request lines; keep them quiet so nothing sensitive lands in logs.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

# --- PAM Hybrid: providers and routing (read through pam_hybrid.conf) ---
OPENAI_API_KEY: str = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL: str = env.str("OPENAI_BASE_URL", default="")
ANTHROPIC_API_KEY: str = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL: str = env.str("ANTHROPIC_BASE_URL", default="")

PAM_SIMPLE_MODEL: str = env.str("PAM_SIMPLE_MODEL", default="gpt-4o-mini")
PAM_COMPLEX_MODEL: str = env.str("PAM_COMPLEX_MODEL", default="claude-sonnet-5-5")
PAM_MAX_OUTPUT_TOKENS: int = env.int("PAM_MAX_OUTPUT_TOKENS", default=1024)
# The router's dial: a query whose score (the probability that it needs the complex route) reaches it goes there.
# Empty: the threshold the shipped model chose by cross-validation (`pam_router evaluate` shows the trade-off).
PAM_ROUTER_THRESHOLD: float | None = env.float("PAM_ROUTER_THRESHOLD", default=None)
if PAM_ROUTER_THRESHOLD is not None and not 0 <= PAM_ROUTER_THRESHOLD <= 1:
    raise ImproperlyConfigured("PAM_ROUTER_THRESHOLD must be between 0 and 1")
PAM_CONTEXT_TOKEN_BUDGET: int = env.int("PAM_CONTEXT_TOKEN_BUDGET", default=6000)
PAM_MAX_MESSAGE_CHARS: int = env.int("PAM_MAX_MESSAGE_CHARS", default=32000)
PAM_CONNECT_TIMEOUT_MS: int = env.int("PAM_CONNECT_TIMEOUT_MS", default=5000)
PAM_FIRST_TOKEN_TIMEOUT_MS: int = env.int("PAM_FIRST_TOKEN_TIMEOUT_MS", default=30000)
PAM_IDLE_TIMEOUT_MS: int = env.int("PAM_IDLE_TIMEOUT_MS", default=30000)
PAM_TOTAL_TIMEOUT_MS: int = env.int("PAM_TOTAL_TIMEOUT_MS", default=300000)
# How long a model may think (visible thinking or reasoning pieces) before its first text, from its first piece.
PAM_THINKING_TIMEOUT_MS: int = env.int("PAM_THINKING_TIMEOUT_MS", default=120000)
# Anthropic prompt caching on the complex route: cache_control on the system prompt, tools and history prefix.
PAM_ANTHROPIC_PROMPT_CACHE: bool = env.bool("PAM_ANTHROPIC_PROMPT_CACHE", default=True)
PAM_ANTHROPIC_CACHE_TTL: str = env.str("PAM_ANTHROPIC_CACHE_TTL", default="5m")
if PAM_ANTHROPIC_CACHE_TTL not in ("5m", "1h"):
    raise ImproperlyConfigured("PAM_ANTHROPIC_CACHE_TTL must be 5m or 1h")
PAM_SDK_MAX_RETRIES: int = env.int("PAM_SDK_MAX_RETRIES", default=0)
PAM_OFFLINE_TOKEN_DELAY_MS: int = env.int("PAM_OFFLINE_TOKEN_DELAY_MS", default=30)
PAM_TOOLS_ENABLED: bool = env.bool("PAM_TOOLS_ENABLED", default=True)
PAM_MAX_TOOL_ROUNDS: int = env.int("PAM_MAX_TOOL_ROUNDS", default=3)
# How long an answer whose socket went away keeps streaming, waiting for the client to resume it.
PAM_RESUME_GRACE_MS: int = env.int("PAM_RESUME_GRACE_MS", default=10000)
# How often the text of answers in flight is saved (and their rows marked alive for the stale-answer sweep).
PAM_CHECKPOINT_INTERVAL_MS: int = env.int("PAM_CHECKPOINT_INTERVAL_MS", default=5000)
# On SIGTERM, how long answers in flight may go on before they are stopped and saved as partial (finish reason
# "shutdown"); new messages are refused meanwhile. Keep it under the orchestrator's kill timeout, minus a few
# seconds for the saves (e.g. Kubernetes' terminationGracePeriodSeconds, 30 s by default).
PAM_SHUTDOWN_GRACE_MS: int = env.int("PAM_SHUTDOWN_GRACE_MS", default=20000)
# Per user, shared by every process through Redis when configured: answers streaming at once, messages per window,
# and spend per UTC day in USD (0: no cap).
PAM_MAX_CONCURRENT_ANSWERS: int = env.int("PAM_MAX_CONCURRENT_ANSWERS", default=3)
# Sockets one user may have open at once, all processes together (0: no cap); the next is closed with 4429.
PAM_MAX_SOCKETS_PER_USER: int = env.int("PAM_MAX_SOCKETS_PER_USER", default=20)
PAM_RATE_LIMIT_MESSAGES: int = env.int("PAM_RATE_LIMIT_MESSAGES", default=30)
PAM_RATE_LIMIT_WINDOW_MS: int = env.int("PAM_RATE_LIMIT_WINDOW_MS", default=60000)
PAM_DAILY_SPEND_CAP_USD: str = env.str("PAM_DAILY_SPEND_CAP_USD", default="5")
# Budget-aware routing: from this share of the day's cap spent, `auto` messages take the simple route (0: never).
PAM_BUDGET_ROUTING_AT: float = env.float("PAM_BUDGET_ROUTING_AT", default=0.8)
if not 0 <= PAM_BUDGET_ROUTING_AT <= 1:
    raise ImproperlyConfigured("PAM_BUDGET_ROUTING_AT must be a share of the daily cap, from 0 (off) to 1")
# Before the first token: retries of a failing provider (jittered backoff, Retry-After honoured) within a deadline,
# then the other route's provider.
PAM_RETRIES: int = env.int("PAM_RETRIES", default=2)
PAM_RETRY_BACKOFF_MS: int = env.int("PAM_RETRY_BACKOFF_MS", default=250)
PAM_RETRY_DEADLINE_MS: int = env.int("PAM_RETRY_DEADLINE_MS", default=8000)
# Circuit breaker per provider: opens on N consecutive failures or a failure rate over a window (with a minimum
# number of calls), lets PAM_BREAKER_PROBES probes through after the cool-down.
PAM_BREAKER_FAILURES: int = env.int("PAM_BREAKER_FAILURES", default=5)
PAM_BREAKER_WINDOW_MS: int = env.int("PAM_BREAKER_WINDOW_MS", default=60000)
PAM_BREAKER_FAILURE_RATE: float = env.float("PAM_BREAKER_FAILURE_RATE", default=0.5)
PAM_BREAKER_MIN_CALLS: int = env.int("PAM_BREAKER_MIN_CALLS", default=10)
PAM_BREAKER_COOLDOWN_MS: int = env.int("PAM_BREAKER_COOLDOWN_MS", default=30000)
PAM_BREAKER_PROBES: int = env.int("PAM_BREAKER_PROBES", default=1)
# Namespace of this deployment's keys in Redis (breakers, message claims).
PAM_REDIS_PREFIX: str = env.str("PAM_REDIS_PREFIX", default="pam:")
PAM_SIGNUP_ENABLED: bool = env.bool("PAM_SIGNUP_ENABLED", default=DEBUG)
# Chat without an account: each browser session gets a password-less account of its own (its own owner).
PAM_ANONYMOUS_CHAT: bool = env.bool("PAM_ANONYMOUS_CHAT", default=False)

# Daphne's own WebSocket frame limit is set on its command line; this bounds what the consumer accepts.
PAM_MAX_FRAME_BYTES: int = env.int("PAM_MAX_FRAME_BYTES", default=256 * 1024)

# /metrics (Prometheus): staff sessions may read it; with a token set, so may `Authorization: Bearer <token>`.
# Several server processes: set PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself, when it is imported,
# not by Django) to a directory every process shares, emptied before the processes start; any process's /metrics
# then reports the sum of all of them.
PAM_METRICS_TOKEN: str = env.str("PAM_METRICS_TOKEN", default="")

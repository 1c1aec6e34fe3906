"""Settings, all read from the environment (see docs/configuration.md)."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from orchestrator_site.env import (
    database_from_url,
    env_allowed_addresses,
    env_base_url,
    env_bool,
    env_choice,
    env_directory,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_secret_token,
    env_str,
    env_time_zone,
    redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ORCH_VAR_DIR", str(BASE_DIR / "var")))


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once per install."""
    key = env_str("SECRET_KEY", "")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "orchestrator_site.accounts.apps.OrchestratorAdminConfig",  # django.contrib.admin
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",  # the API's docs page: Swagger UI from our own static files
    "channels",
    "workflows",
    "runs",
    "runs.live",  # tells the browsers what the engine announces
    "runs.schedules",
    "runs.hooks",
    "runs.notify",
    "orchestrator_site.api",
    "orchestrator_site.accounts",
]

# Logging in is Django's; the admin role gives the admin site's permissions.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "orchestrator_site.accounts.admin_site.RoleBackend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "orchestrator_site.request_checks.refuse_nul_characters",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "orchestrator_site.accounts.audit.remember_actor",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "orchestrator_site.dashboard_address.remember_served_at",
]

ROOT_URLCONF = "orchestrator_site.urls"
ASGI_APPLICATION = "orchestrator_site.asgi.application"
WSGI_APPLICATION = None

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
            # {% may "run" workflow as can_run %} on every page (access.py).
            "builtins": ["orchestrator_site.accounts.templatetags.access"],
        },
    },
]

DATABASES = {"default": database_from_url("DATABASE_URL", VAR_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_url("REDIS_URL")
if REDIS_URL:
    # Pub/sub: a message to a run's group is published once and fanned out to
    # the viewers in each server process. Nothing is kept for a viewer that is
    # away; the consumers read the database to fill any gap.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNEL_PREFIX", "orch")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The distributed executor: set, every started step is a Celery task on the
# step's queue (see docs/deployment.md); unset, steps run in this process.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged when a worker starts it, never redelivered after:
# a step whose worker dies is failed (or retried, as its retries allow) by
# the orchestrator's own heartbeats, so a shell step never runs twice behind
# its back. One task reserved at a time, so a busy worker holds no others.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a broker outage is waited out
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Keep a worker's database connection across tasks (Celery closes it after
# each by default: a new PostgreSQL backend for every step cost ~5 ms).
CELERY_DB_REUSE_MAX = 1000
if _prefix := env_str("CELERY_KEY_PREFIX", ""):
    # Several installations (or test runs) on one Redis keep apart.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": _prefix}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from the source folders, so a fresh checkout needs no
# collectstatic; production may still collect them (docs/configuration.md).
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads no cookie; the token is in the page
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# No inline script, no eval, nothing from elsewhere, never in a frame. Style
# attributes stay allowed (the run page's timeline bars are placed with
# them); <style> elements do not (htmx is told not to add its own).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# Live pages (websockets) one user may have open at once, per server process.
ORCH_MAX_WEBSOCKETS_PER_USER = env_int("ORCH_MAX_WEBSOCKETS_PER_USER", 50, minimum=1)
# Runs one person may start within a minute (0 = no limit); beyond, a 429.
ORCH_MAX_RUNS_PER_MINUTE = env_int("ORCH_MAX_RUNS_PER_MINUTE", 60, minimum=0)
# Failed log-ins for one account within this many minutes lock it for as
# long (ten times as many from one address lock the address).
ORCH_LOGIN_MAX_FAILURES = env_int("ORCH_LOGIN_MAX_FAILURES", 5, minimum=1)
ORCH_LOGIN_LOCK_MINUTES = env_int("ORCH_LOGIN_LOCK_MINUTES", 15, minimum=1)
# Served over HTTPS (by a proxy in front, or Daphne with TLS): cookies only
# over HTTPS, HSTS, and plain-HTTP requests redirected (but /healthz, for
# load balancers' checks from inside).
ORCH_HTTPS = env_bool("ORCH_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = ORCH_HTTPS
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if ORCH_HTTPS else 0
# Promises about the whole domain, for its owner to make (docs/security.md).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ORCH_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("ORCH_HSTS_PRELOAD", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Behind a proxy that terminates TLS and says so in X-Forwarded-Proto: trust
# that header. Only then: anyone could send it to a server reached directly.
if env_bool("ORCH_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "runs": {
            "handlers": ["console"],
            "level": LOG_LEVEL,
            "propagate": False,
        },
        "workflows": {
            "handlers": ["console"],
            "level": LOG_LEVEL,
            "propagate": False,
        },
        # A request that failed (a 500) leaves its traceback in the server's
        # log, not only in an e-mail to ADMINS nobody configured.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

# The run engine.
# Where each step run gets its fresh working directory.
ORCH_WORK_ROOT = Path(env_str("ORCH_WORK_ROOT", tempfile.gettempdir()))
# The Unix user step processes run as when the server runs as root (never
# root itself): empty means orch-step, created when missing (step_user.py).
ORCH_STEP_USER = env_str("ORCH_STEP_USER", "")
# Fernet keys of the secrets store, newest first (secret_store.py); empty:
# a key generated once into VAR_DIR/secrets_key.
ORCH_SECRETS_KEYS = env_list("ORCH_SECRETS_KEYS", [])
# Log cap per step attempt: past it, the head and the tail are kept with a
# marker between them that says how much was dropped.
ORCH_LOG_CAP_BYTES = env_int("ORCH_LOG_CAP_BYTES", 16 * 1024 * 1024, minimum=1024)
ORCH_LOG_CAP_LINES = env_int("ORCH_LOG_CAP_LINES", 1_000_000, minimum=10)
ORCH_LOG_LINE_MAX_BYTES = 64 * 1024
# How often buffered log lines are written (seconds).
ORCH_LOG_FLUSH_INTERVAL = env_float("ORCH_LOG_FLUSH_INTERVAL", 0.1, minimum=0.01)
# Between SIGTERM and SIGKILL when a step is stopped (seconds).
ORCH_KILL_GRACE = env_float("ORCH_KILL_GRACE", 5.0, minimum=0)
# Running steps and runs record a heartbeat this often (seconds)...
ORCH_HEARTBEAT_INTERVAL = env_float("ORCH_HEARTBEAT_INTERVAL", 5.0, minimum=0.1)
# ...and are taken for lost when it is older than this (seconds).
ORCH_HEARTBEAT_TIMEOUT = env_float("ORCH_HEARTBEAT_TIMEOUT", 30.0, minimum=1)
if ORCH_HEARTBEAT_TIMEOUT <= 2 * ORCH_HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured(
        f"ORCH_HEARTBEAT_TIMEOUT={ORCH_HEARTBEAT_TIMEOUT:g} must be more than twice "
        f"ORCH_HEARTBEAT_INTERVAL={ORCH_HEARTBEAT_INTERVAL:g}, or live steps look lost."
    )
# A step sent to a Celery queue and taken by no worker for this long (its
# task lost with a broker restarted empty) is sent again (seconds).
ORCH_RESEND_AFTER = env_float("ORCH_RESEND_AFTER", 60.0, minimum=1)
# A Celery worker told to stop (SIGTERM) lets its running steps finish for
# this long, then stops them and fails them (seconds).
ORCH_WORKER_GRACE = env_float("ORCH_WORKER_GRACE", 30.0, minimum=0)
# The dashboard's address as steps reach it ({{ dashboard.url }}, $ORCH_BASE_URL).
# Unset, a server uses the address it is bound to; set it where steps run in
# processes that serve no page (run_workflow, Celery workers).
ORCH_BASE_URL = env_base_url("ORCH_BASE_URL")
# What an http step may reach besides public addresses: host names,
# addresses or networks, each on every port or on one (see
# docs/security.md). Loopback, private, link-local (cloud metadata) and the
# server's own database, Redis and broker ports are refused otherwise.
ORCH_HTTP_ALLOW = env_allowed_addresses("ORCH_HTTP_ALLOW")
# Steps the local executor (of the server, or of run_workflow) executes at
# once; more that could start wait, pending, and the runs holding them take
# free slots in turn. 0 = no limit. Celery workers: their concurrency.
ORCH_MAX_PARALLEL_STEPS = env_int("ORCH_MAX_PARALLEL_STEPS", 64, minimum=0)
# Start the in-process executor with the ASGI server (off in tests).
ORCH_EXECUTOR_AUTOSTART = env_bool("ORCH_EXECUTOR_AUTOSTART", True)

# Run retention, applied by `manage.py prune_runs` when given no limit of its
# own: finished runs created more than this many days ago (decimals allowed),
# and those beyond the newest this many runs of their workflow, are deleted.
# 0 = no limit; both 0 (the default) = nothing is deleted.
ORCH_KEEP_DAYS = env_float("ORCH_KEEP_DAYS", 0, minimum=0)
ORCH_KEEP_RUNS = env_int("ORCH_KEEP_RUNS", 0, minimum=0)

# The most steps one workflow may have (import, editor and the command alike):
# every run copies them all, and the editor draws every one.
ORCH_MAX_STEPS = env_int("ORCH_MAX_STEPS", 1000, minimum=1)
# Items of one map (a step with for_each): a longer list fails the step.
ORCH_MAX_MAP_ITEMS = env_int("ORCH_MAX_MAP_ITEMS", 1000, minimum=1)
# How deep workflow steps may call other workflows: a run started by a
# workflow step of a run that is this many calls deep is not started.
ORCH_MAX_WORKFLOW_DEPTH = env_int("ORCH_MAX_WORKFLOW_DEPTH", 5, minimum=1)
# Items of a map running at once when its step sets no max_parallel: a map
# feeds the executor (and Celery's queues) this many at a time, so other
# runs' steps go between its items.
ORCH_MAP_MAX_PARALLEL = env_int("ORCH_MAP_MAX_PARALLEL", 32, minimum=1)

# Notifications by e-mail (docs/notifications.md): Django's default mailer,
# an SMTP server named by the EMAIL_* variables.
_EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)  # STARTTLS, usually port 587
_EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # TLS from the start, usually port 465
if _EMAIL_USE_TLS and _EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL: set one of them, not both.")
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": env_str("EMAIL_HOST", "localhost"),
            "port": env_int("EMAIL_PORT", 25, minimum=1),
            "username": env_str("EMAIL_HOST_USER", ""),
            "password": env_str("EMAIL_HOST_PASSWORD", ""),
            "use_tls": _EMAIL_USE_TLS,
            "use_ssl": _EMAIL_USE_SSL,
            # Seconds a notification waits for the mail server (the sender's
            # loop waits as long).
            "timeout": env_float("EMAIL_TIMEOUT", 10.0, minimum=0.1),
        },
    }
}
# The From: of notification e-mails.
ORCH_NOTIFY_FROM = env_str("ORCH_NOTIFY_FROM", "orchestrator@localhost")
DEFAULT_FROM_EMAIL = SERVER_EMAIL = ORCH_NOTIFY_FROM

# Prometheus /metrics (docs/metrics.md): open to a request that sends this
# token as "Authorization: Bearer <token>" ("" = no token opens it)...
ORCH_METRICS_TOKEN = env_secret_token("ORCH_METRICS_TOKEN", min_length=24)
# ...and to clients whose address is in these networks (default: none).
ORCH_METRICS_ALLOW_FROM = env_networks("ORCH_METRICS_ALLOW_FROM")
# prometheus_client's multiprocess mode: every process on a host writes
# its metrics there, and /metrics adds them up. Read by prometheus_client
# itself; checked here so that a missing directory stops the start.
PROMETHEUS_MULTIPROC_DIR = env_directory("PROMETHEUS_MULTIPROC_DIR")

# What the background loop (runs/schedules/loop.py) calls once a second, in
# order, each as fn(now): firing due schedule slots, sending notifications.
ORCH_BACKGROUND_TASKS = [
    "runs.schedules.scheduler.fire_due",
    "runs.notify.sender.send_due",
    "runs.background.time_out_approvals",
]
# Where that loop runs: "in-process" (a thread of the server, the embedded
# default) or "off" (run `manage.py scheduler` processes instead).
ORCH_SCHEDULER = env_choice("ORCH_SCHEDULER", "in-process", ("in-process", "off"))
# A schedule slot first seen more than this many seconds after its time
# (nothing was running then) is a missed one: its schedule's `missed`
# policy decides whether it runs.
ORCH_SCHEDULE_GRACE = env_float("ORCH_SCHEDULE_GRACE", 60.0, minimum=1)

"""Settings for feedbackloop.

Every knob is read from the environment (or a .env file) with a default that works on a laptop:
SQLite, media on local disk and a Celery broker on the filesystem. Setting DATABASE_URL and
REDIS_URL switches to PostgreSQL and Redis; nothing that matters exists only in production.
"""

from __future__ import annotations

from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false (see "
            "config/production.env.example)"
        )
    SECRET_KEY = "dev-insecure-key-change-me-in-production-0123456789abcdef"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS, cookies and security headers ------------------------------------------------------
# Production defaults when DEBUG is off (TLS ends at a proxy such as nginx, which sets
# X-Forwarded-Proto); plain-HTTP defaults on a laptop. Every one can be set on its own.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe /healthz over plain HTTP, without the proxy's header.
SECURE_REDIRECT_EXEMPT = env.list("DJANGO_SECURE_REDIRECT_EXEMPT", default=[r"^healthz$"])
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
# "Header-Name: value" that the TLS proxy sets on HTTPS requests (and strips from clients'
# requests); empty when nothing sits in front of Django.
_proxy_ssl_header = env(
    "DJANGO_SECURE_PROXY_SSL_HEADER", default="" if DEBUG else "X-Forwarded-Proto: https"
)
if _proxy_ssl_header.strip():
    _name, _, _value = _proxy_ssl_header.partition(":")
    if not _name.strip() or not _value.strip():
        raise ImproperlyConfigured(
            f"DJANGO_SECURE_PROXY_SSL_HEADER must look like 'X-Forwarded-Proto: https', "
            f"not {_proxy_ssl_header!r}"
        )
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _name.strip().upper().replace("-", "_"),
        _value.strip(),
    )

# Content-Security-Policy (django-csp 4): same-origin everything, no inline or eval'd script.
# Inline <style> blocks need the page's nonce (<style nonce="{{ request.csp_nonce }}">); style
# attributes are allowed (CSS in an attribute cannot read the page). Media and poster images
# may also come from object storage: CSP_MEDIA_ORIGINS=https://bucket.s3.example.com,...
# (Local names: django-csp's system check reads settings named CSP_* as its old format.)
_csp_media_origins = env.list("CSP_MEDIA_ORIGINS", default=[])
_csp_report_uri = env("CSP_REPORT_URI", default="")
_csp = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:", *_csp_media_origins],
        "media-src": [SELF, *_csp_media_origins],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "report-uri": _csp_report_uri or None,
    }
}
# CSP_REPORT_ONLY=true sends the same policy as Content-Security-Policy-Report-Only (a trial).
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _csp
else:
    CONTENT_SECURITY_POLICY = _csp

VAR_DIR = Path(env("FEEDBACKLOOP_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "csp",
    "feedbackloop",
    "pipelines",
    "generation",
    "reviews",
    "improvements",
    "integrations",
]

MIDDLEWARE = [
    # First, to see every other layer's answer: nothing under /api/ leaves as HTML.
    "feedbackloop.api_error_middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "feedbackloop.urls"
WSGI_APPLICATION = "feedbackloop.wsgi.application"

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
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file in the embedded default: WAL lets readers run
    # beside the writer, IMMEDIATE transactions take the write lock up front instead of failing
    # on upgrade, and the timeout waits for the lock rather than raising "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, with a health check that asks the server only when the connection's
        # socket shows it has something to say (see feedbackloop/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "feedbackloop.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# The cached backend first: new sign-ins use it; sessions made before it existed name the plain
# ModelBackend and stay valid.
AUTHENTICATION_BACKENDS = [
    "feedbackloop.auth_backend.CachedModelBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
CSRF_FAILURE_VIEW = "feedbackloop.views.csrf_failure"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "media")))
STORAGES = {
    "default": {
        "BACKEND": env(
            "DEFAULT_FILE_STORAGE", default="django.core.files.storage.FileSystemStorage"
        )
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve video through the front server in production: the view answers with an
# X-Accel-Redirect header under this internal prefix instead of streaming the bytes itself.
VIDEO_ACCEL_REDIRECT_PREFIX = env("VIDEO_ACCEL_REDIRECT_PREFIX", default="")
# Shared object storage for a multi-host site (docs/scale-out.md): MEDIA_STORAGE=s3 puts media
# in an S3-compatible bucket through django-storages. Workers then upload straight to it with
# presigned PUT URLs, and reviewers' players are redirected to presigned GET URLs (the bucket
# answers Range requests). Local disk stays the default.
MEDIA_STORAGE = env("MEDIA_STORAGE", default="local")
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "access_key": env("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env("AWS_SECRET_ACCESS_KEY", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "addressing_style": env("AWS_S3_ADDRESSING_STYLE", default=None),
            "signature_version": "s3v4",
            "location": env("AWS_LOCATION", default=""),
            "querystring_auth": True,
            "querystring_expire": env.int("MEDIA_PRESIGN_SECONDS", default=3600),
            "default_acl": None,
            "file_overwrite": True,
        },
    }
elif MEDIA_STORAGE != "local":
    raise ImproperlyConfigured(f"MEDIA_STORAGE must be local or s3, not {MEDIA_STORAGE!r}")

# --- Celery -------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
# One cache for every web and worker process: API throttles count across processes, sessions
# are read from memory (written through to the database, so none is lost when Redis restarts),
# and reviewer roles are remembered for a few seconds. Without Redis each process has its own.
if REDIS_URL:

    def _next_database(url: str) -> str:
        """The cache lives in the Redis database after the broker's, so clearing it never
        touches a queue."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        number = int(parts.path.strip("/") or 0) + 1
        return urlunsplit(parts._replace(path=f"/{number}"))

    CACHES = {
        "default": {
            "BACKEND": "feedbackloop.resilient_cache.ResilientRedisCache",
            "LOCATION": env("CACHE_URL", default=_next_database(REDIS_URL)),
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="feedbackloop"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # An unacknowledged message comes back after this long: longer than the longest task,
        # or a slow render would run twice. A worker that died is recovered sooner by the
        # reconciler (its generation's lease runs out), not by this timeout.
        "visibility_timeout": max(
            env.int("GENERATION_TIME_LIMIT_SECONDS", default=600),
            env.int("METRICS_TIME_LIMIT_SECONDS", default=900),
        )
        + 300,
        # Fail fast when Redis is down, so a request is not held up by a publish.
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
    }
else:
    # A broker that needs no server: kombu's filesystem transport, messages as files in var/.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A lost broker connection does not cancel running renders: their results are written to the
# database, and a redelivered message finds the generation finished (or still leased).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# One quick retry on publish; after that the reconciler takes over (feedbackloop/dispatch.py).
CELERY_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Several sites (or test runs) can share one Redis: a namespace prefixes every queue name.
CELERY_QUEUE_NAMESPACE = env("CELERY_QUEUE_NAMESPACE", default="")
CELERY_QUEUES_USED = {
    name: f"{CELERY_QUEUE_NAMESPACE}{name}"
    for name in ("generation", "metrics", "improver", "default")
}
CELERY_TASK_DEFAULT_QUEUE = CELERY_QUEUES_USED["default"]
CELERY_TASK_ROUTES = {
    "generation.tasks.generation_run_task": {"queue": CELERY_QUEUES_USED["generation"]},
    "generation.tasks.metrics_compute_task": {"queue": CELERY_QUEUES_USED["metrics"]},
    "generation.tasks.reconcile_task": {"queue": CELERY_QUEUES_USED["default"]},
    "reviews.tasks.*": {"queue": CELERY_QUEUES_USED["default"]},
    "improvements.tasks.*": {"queue": CELERY_QUEUES_USED["improver"]},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- The product's own knobs ----------------------------------------------------------------
# The pipeline that requests naming none use (the API's pipeline-less endpoints, the library).
FEEDBACKLOOP_DEFAULT_PIPELINE = env("FEEDBACKLOOP_DEFAULT_PIPELINE", default="builtin")
FEEDBACKLOOP_CONFIG_PATH = Path(
    env("FEEDBACKLOOP_CONFIG", default=str(BASE_DIR / "config" / "default_config.yaml"))
)
# The web site leaves improver proposals for an admin to approve; the library applies them.
IMPROVER_REQUIRE_APPROVAL = env.bool("IMPROVER_REQUIRE_APPROVAL", default=True)
# Reviews per video before the queue moves on; unset: the config file's
# feedback.target_reviews_per_generation (default 3).
REVIEWS_TARGET_PER_GENERATION = env.int("REVIEWS_TARGET_PER_GENERATION", default=None)
GENERATION_TIME_LIMIT_SECONDS = env.int("GENERATION_TIME_LIMIT_SECONDS", default=600)
# A render on the site's workers holds its generation with a lease that its progress heartbeats
# (at most every GENERATION_HEARTBEAT_SECONDS) renew; a lease that runs out means the renderer
# died, and the generation is taken up again.
GENERATION_LEASE_SECONDS = env.int("GENERATION_LEASE_SECONDS", default=120)
GENERATION_HEARTBEAT_SECONDS = env.float("GENERATION_HEARTBEAT_SECONDS", default=5.0)
# Runs of a generation (server renders and remote jobs alike) before it fails for good.
GENERATION_MAX_ATTEMPTS = env.int("GENERATION_MAX_ATTEMPTS", default=3)
# The reconciler (a beat task) runs this often: it dispatches queued work whose task never
# reached the broker or was lost, takes back work whose heartbeat stopped, and sweeps litter.
RECONCILE_EVERY_SECONDS = env.int("RECONCILE_EVERY_SECONDS", default=30)
# A queued generation whose task was sent this long ago and never started is sent again.
GENERATION_REDISPATCH_SECONDS = env.int("GENERATION_REDISPATCH_SECONDS", default=300)
# Temporary files (partial renders, uploads of a killed web worker) older than this are swept.
LITTER_MAX_AGE_SECONDS = env.int("LITTER_MAX_AGE_SECONDS", default=3600)
# Limits of an uploaded video (a worker's or an import's); past one the answer is 400.
UPLOAD_MAX_WIDTH = env.int("UPLOAD_MAX_WIDTH", default=3840)
UPLOAD_MAX_HEIGHT = env.int("UPLOAD_MAX_HEIGHT", default=2160)
UPLOAD_MAX_FPS = env.float("UPLOAD_MAX_FPS", default=120.0)
UPLOAD_MAX_DURATION_SECONDS = env.float("UPLOAD_MAX_DURATION_SECONDS", default=600.0)
METRICS_TIME_LIMIT_SECONDS = env.int("METRICS_TIME_LIMIT_SECONDS", default=900)
METRICS_OCR_ENABLED = env.bool("METRICS_OCR_ENABLED", default=True)
MAX_PROMPT_LENGTH = 2000
# The prompts a proposal's sample videos are made for (its page plays them beside its parent's),
# separated by "|".
PROPOSAL_SAMPLE_PROMPTS = [
    prompt.strip()
    for prompt in env(
        "PROPOSAL_SAMPLE_PROMPTS",
        default="A policy briefing on renewable energy initiatives"
        "|An explainer on household water conservation",
    ).split("|")
    if prompt.strip()
]

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # The token class comes first so that a request without credentials gets 401 with a
    # WWW-Authenticate header rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "generation.authentication.WorkerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Worker tokens open only the views that allow the worker role explicitly.
    "DEFAULT_PERMISSION_CLASSES": ["feedbackloop.roles.IsSignedInPerson"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["generation.authentication.PerCallerThrottle"],
    "EXCEPTION_HANDLER": "feedbackloop.api_errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "feedbackloop API",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two "status" choice sets (a generation's, an import result's): name them, or the schema
    # gets "Status444Enum" and `check --deploy` warns.
    "ENUM_NAME_OVERRIDES": {"GenerationStatusEnum": "generation.models.Generation.Status"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- worker API ---------------------------------------------------------------------------
# Uploads past this size are refused with 413 (checked on Content-Length, then on the file).
API_MAX_UPLOAD_BYTES = env.int("API_MAX_UPLOAD_BYTES", default=500 * 1024 * 1024)
# JSON request bodies past this size are refused with 413.
API_MAX_JSON_BYTES = env.int("API_MAX_JSON_BYTES", default=1024 * 1024)
# A claimed job's lease lasts this long unless the worker asks for another length (up to the
# maximum); heartbeats extend it. After API_JOB_MAX_ATTEMPTS expired leases a job fails.
API_JOB_LEASE_SECONDS = env.int("API_JOB_LEASE_SECONDS", default=120)
API_JOB_LEASE_MAX_SECONDS = env.int("API_JOB_LEASE_MAX_SECONDS", default=3600)
API_JOB_MAX_ATTEMPTS = env.int("API_JOB_MAX_ATTEMPTS", default=3)
# Requests per caller: per worker token, per signed-in user, per IP for anonymous requests.
# Counters live in Django's cache; the default LocMem cache counts per process, so with
# several web processes give them a shared cache (e.g. Redis) for an exact limit.
API_THROTTLE_RATES = {
    "worker": env("API_THROTTLE_WORKER", default="600/min"),
    "user": env("API_THROTTLE_USER", default="300/min"),
    "anon": env("API_THROTTLE_ANON", default="60/min"),
}
# Multipart uploads of any size stream to temporary files; only form fields count against
# Django's in-memory limit (a larger field is a JSON 413, not a crash).
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
# Large uploads spool to files here (not the shared /tmp), so the reconciler can sweep the ones
# a killed web worker left behind without touching anyone else's temporary files.
FILE_UPLOAD_TEMP_DIR = str(Path(env("FILE_UPLOAD_TEMP_DIR", default=str(VAR_DIR / "uploads"))))
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
SPECTACULAR_SETTINGS.update(
    {
        "DESCRIPTION": "Configuration, leased jobs, uploads, metrics and feedback for "
        "generator workers and reviewers. See docs/api.md.",
        "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
        "COMPONENT_SPLIT_REQUEST": True,
        "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
        "SERVE_AUTHENTICATION": [],
    }
)
# A worker token opens the API only: a request carrying one anywhere else is refused (403).
MIDDLEWARE = [*MIDDLEWARE, "generation.authentication.TokenOnlyForApiMiddleware"]

# --- integrations: exports, imports, webhooks ---------------------------------------------------
# The site's public address, for links in webhooks and emails.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="feedbackloop@localhost")
# import_videos reads files only under these folders (comma-separated; none: paths refused).
IMPORT_ALLOWED_ROOTS = env.list("IMPORT_ALLOWED_ROOTS", default=[])
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=API_MAX_UPLOAD_BYTES)
IMPORT_DOWNLOAD_TIMEOUT_SECONDS = env.float("IMPORT_DOWNLOAD_TIMEOUT_SECONDS", default=30.0)
IMPORT_DOWNLOAD_MAX_SECONDS = env.float("IMPORT_DOWNLOAD_MAX_SECONDS", default=600.0)
IMPORT_API_MAX_ENTRIES = env.int("IMPORT_API_MAX_ENTRIES", default=50)
# Webhook deliveries: attempts before a delivery is marked failed, the first retry's delay
# (doubling after each failure, capped), the HTTP timeout, and how overdue a pending delivery
# must be before the periodic sweep sends its task again.
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
# Kept below the broker's visibility timeout: Redis redelivers a message delayed past it, and the
# webhook would go out twice.
WEBHOOK_RETRY_MAX_SECONDS = env.float("WEBHOOK_RETRY_MAX_SECONDS", default=900.0)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_REDISPATCH_SECONDS = env.int("WEBHOOK_REDISPATCH_SECONDS", default=120)

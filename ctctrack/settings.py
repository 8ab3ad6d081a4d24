"""Settings for CTC Track.

One file. Every value that differs between a laptop and production comes from
an environment variable. The defaults are safe: without `DEBUG=True` the app
refuses to start unless a real `SECRET_KEY` is given. `make run` and
`make test` set `DEBUG=True` for local use only.

`DATABASE_URL` selects the database (PostgreSQL in production and CI); without
it, SQLite in a git-ignored file inside the project folder.

Production is whatever runs with `DEBUG=False`: HTTPS only (redirect, HSTS,
secure cookies) and two-factor sign-in for every user are then on by default,
with no further switch. docs/security.md says which setting meets which
safeguard; `python manage.py check --deploy` and the project's own checks
(ctctrack/checks.py) fail when one is weakened.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import dj_email_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production"  # noqa: S105


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default)
    if value not in ("True", "False"):
        raise ImproperlyConfigured(f"{name}={value!r}: use 'True' or 'False'")
    return value == "True"


def envint(name: str, default: str) -> int:
    value = os.getenv(name, default)
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r}: use a whole number") from exc


def envfraction(name: str, default: str, *, low: float, high: float) -> float:
    value = os.getenv(name, default)
    try:
        number = float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r}: use a number") from exc
    if not math.isfinite(number) or not low <= number <= high:
        raise ImproperlyConfigured(f"{name}={value!r}: use a number from {low} to {high}")
    return number


DEBUG = envbool("DEBUG", "False")

# Build-time commands that never sign anything may run without a key (a CI step
# checking migrations, collectstatic in an image build); manage.py names the
# command. Everything else, the app server above all, refuses to start.
KEYLESS_COMMANDS = frozenset({"makemigrations", "collectstatic", "help"})
SECRET_KEY = os.getenv("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
_keyless = os.getenv("CTCTRACK_MANAGEMENT_COMMAND", "") in KEYLESS_COMMANDS
if (not SECRET_KEY and not _keyless) or (SECRET_KEY == _DEV_SECRET_KEY and not DEBUG):
    raise ImproperlyConfigured("Set SECRET_KEY in the environment (or DEBUG=True for local use).")

ALLOWED_HOSTS = [
    h.strip()
    for h in os.getenv("ALLOWED_HOSTS", "localhost,127.0.0.1" if DEBUG else "").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",  # before "patients": roles are synced after its permissions exist
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "simple_history",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "ctctrack",  # registers the project's system checks (ctctrack/checks.py)
    "patients",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /healthz and /readyz are answered here: nothing below (sessions, sign-in, the
    # access log's middleware) runs for them.
    "ctctrack.health.HealthCheckMiddleware",
    # Static files are answered here, before anything below: they carry no patient
    # data, so they keep WhiteNoise's caching headers.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "ctctrack.middleware.NoStoreMiddleware",
    "ctctrack.middleware.SvgDocumentPolicyMiddleware",
    # Outside sessions and auth, which also query the database, so that an
    # outage anywhere below still answers 503.
    "ctctrack.middleware.DatabaseUnavailableMiddleware",
    # Writes each request's access-log events after the view's transaction has
    # ended, so the event of a refused (rolled-back) request is kept too.
    "patients.audit.middleware.AuditMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages: a timed-out user is told why on the login page.
    "patients.accounts.middleware.SessionTimeoutMiddleware",
    "patients.accounts.middleware.RequireMFAMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # With a read replica only: which views may read it, and the pin after a write.
    "ctctrack.routers.ReadYourWritesMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# With DEBUG on (`make run`), a missing page or a crash shows the app's own 404 and 500
# pages, as in production; CTCTRACK_TECHNICAL_ERROR_PAGES=True brings back Django's
# technical pages (settings, traceback) for debugging. Without DEBUG it changes nothing.
CTCTRACK_TECHNICAL_ERROR_PAGES = envbool("CTCTRACK_TECHNICAL_ERROR_PAGES", "False")
if DEBUG and not CTCTRACK_TECHNICAL_ERROR_PAGES:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.clickjacking.XFrameOptionsMiddleware") + 1,
        "ctctrack.middleware.AppErrorPagesMiddleware",
    )

ROOT_URLCONF = "ctctrack.urls"
WSGI_APPLICATION = "ctctrack.wsgi.application"

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
                "patients.web.context.open_counts",
            ],
            # `day` and `moment`: every page writes dates the way patients.wording does.
            "builtins": ["patients.web.dates"],
        },
    },
]

# SQLite by default so a fresh checkout runs with no setup; DATABASE_URL
# (postgres://user:password@host:port/name) switches to PostgreSQL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", "60"),
        conn_health_checks=True,
        # Behind pgbouncer in transaction pooling mode, a server-side cursor (what
        # QuerySet.iterator() uses on PostgreSQL: verify_audit, the audit CSV export)
        # may meet another server connection at its next fetch: switch them off there.
        disable_server_side_cursors=envbool("DB_DISABLE_SERVER_SIDE_CURSORS", "False"),
    )
}
# Every request is one transaction: a failed write leaves nothing half-saved.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def replica_database(primary_copy: dj_database_url.DBConfig) -> dj_database_url.DBConfig:
    """The `replica` alias's settings from a parsed DATABASE_REPLICA_URL.

    No ATOMIC_REQUESTS: a request's transaction is on the primary, and one on the
    replica too would open a second connection for every request. A test run
    treats it as a mirror of `default` (no second test database). On PostgreSQL
    every transaction on it is read-only, so a write routed there by mistake
    fails in tests and on a laptop just as it would on a standby.
    """
    replica: dj_database_url.DBConfig = {**primary_copy, "ATOMIC_REQUESTS": False}
    replica["TEST"] = {**replica.get("TEST", {}), "MIRROR": "default"}
    if "postgresql" in replica.get("ENGINE", ""):
        options = dict(replica.get("OPTIONS", {}))
        read_only = "-c default_transaction_read_only=on"
        options["options"] = f"{options.get('options', '')} {read_only}".strip()
        replica["OPTIONS"] = options
    return replica


# An optional read replica (a PostgreSQL streaming standby of `default`). Only
# GET requests of the worklist, patient list, patient page and charts read the
# clinical tables from it, and not for a user who has just written:
# ctctrack/routers.py says what goes where and why. Unset: one database, as ever.
_replica_url = os.getenv("DATABASE_REPLICA_URL", "")
if _replica_url:
    DATABASES["replica"] = replica_database(
        dj_database_url.parse(
            _replica_url,
            conn_max_age=envint("DB_CONN_MAX_AGE", "60"),
            conn_health_checks=True,
        )
    )
    DATABASE_ROUTERS = ["ctctrack.routers.ReplicaRouter"]
# After a user's write (POST, PUT, PATCH, DELETE), that browser reads from the
# primary for this long, so they see their own change even while the replica
# lags. Streaming replication on one site's network lags well under a second;
# 10 s covers the redirect after the form and the next few pages with room for a
# lag spike. Alert on replay lag above it (docs/deployment.md).
CTCTRACK_READ_YOUR_WRITES_SECONDS = envint("CTCTRACK_READ_YOUR_WRITES_SECONDS", "10")

# --- Cache: charts (keyed by the patient's data version) -------------------------
# CACHE_URL picks one cache that every app server shares: unset, each process's
# own memory (one server); redis://[:password@]host:port/db (rediss:// for TLS)
# or memcached://host:port. Charts show patient data: the cache must be private
# to this installation (its own Redis database or CACHE_KEY_PREFIX) and network.
# Nothing else that must agree across servers lives in a process: sessions,
# django-axes' failures and lockouts (its default database handler), django-otp's
# devices and throttling are in the database; messages in the session;
# there are no DRF throttles. Charts are keyed by the patient's data version, which
# every write bumps in the database, so no server can serve another's stale chart.
CACHE_SCHEMES = {
    # Django's RedisCache, with a cache that is down read as a miss (ctctrack/cache.py).
    "redis": "ctctrack.cache.RedisCache",
    "rediss": "ctctrack.cache.RedisCache",
    "memcached": "django.core.cache.backends.memcached.PyMemcacheCache",
}
# A cache that does not answer within this long is skipped for that request: a chart
# redrawn (40-50 ms) beats a request held for as long as the cache hangs.
CACHE_TIMEOUT_SECONDS = 0.5
CACHE_OPTIONS = {
    "redis": {
        "socket_connect_timeout": CACHE_TIMEOUT_SECONDS,
        "socket_timeout": CACHE_TIMEOUT_SECONDS,
    },
    "memcached": {
        "connect_timeout": CACHE_TIMEOUT_SECONDS,
        "timeout": CACHE_TIMEOUT_SECONDS,
        "ignore_exc": True,
    },
}


def cache_from_url(url: str, *, key_prefix: str = "") -> dict[str, Any]:
    """The `default` entry of CACHES for a CACHE_URL; "" is local memory."""
    if not url:
        # Each process's own memory. Django's default of 300 entries is too few: a page of
        # the worklist keeps up to 100 (50 rows, 50 assessments) beside the charts, so two
        # nurses paging would evict each other. 5,000 entries are some tens of megabytes.
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": LOCAL_CACHE_ENTRIES},
        }
    parts = urlsplit(url)
    backend = CACHE_SCHEMES.get(parts.scheme)
    if backend is None or not parts.hostname:
        raise ImproperlyConfigured(
            f"CACHE_URL scheme {parts.scheme!r} (host {parts.hostname!r}) is not supported: use "
            "redis://host:port/db, rediss://host:port/db or memcached://host:port, "
            "or leave it unset for local memory."
        )
    # redis-py reads the password, database and TLS from the URL itself.
    kind = "redis" if parts.scheme.startswith("redis") else "memcached"
    return {
        "BACKEND": backend,
        "LOCATION": url if kind == "redis" else parts.netloc,
        "KEY_PREFIX": key_prefix,
        "OPTIONS": CACHE_OPTIONS[kind],
    }


LOCAL_CACHE_ENTRIES = 5000

CACHES = {
    "default": cache_from_url(
        os.getenv("CACHE_URL", ""), key_prefix=os.getenv("CACHE_KEY_PREFIX", "ctctrack")
    )
}

AUTHENTICATION_BACKENDS = [
    # First, so that every authenticate() with a request is refused while its
    # username and address are locked out (the sign-in form, admin, API token).
    "patients.accounts.backends.LoginThrottleBackend",
    # An account's permissions in one query; it answers every permission check.
    "patients.accounts.backends.RolePermissionsBackend",
    # Signs accounts in (the sessions name it).
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = os.getenv("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    # No collectstatic step for local runs and tests.
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- Sessions: automatic logoff (45 CFR 164.312(a)(2)(iii)) ------------------
# In the database (Django's default), so every app server sees the same sessions.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
# Absolute limit: a session ends 12 hours after sign-in, however active.
CTCTRACK_SESSION_MAX_AGE_SECONDS = envint("CTCTRACK_SESSION_MAX_AGE_SECONDS", str(12 * 3600))
SESSION_COOKIE_AGE = CTCTRACK_SESSION_MAX_AGE_SECONDS
# Idle limit, enforced by patients.accounts.middleware.SessionTimeoutMiddleware.
# API tokens expire like sessions; a client asks for a new one
# (see patients/accounts/authentication.py).
CTCTRACK_API_TOKEN_MAX_AGE_SECONDS = envint(
    "CTCTRACK_API_TOKEN_MAX_AGE_SECONDS", str(CTCTRACK_SESSION_MAX_AGE_SECONDS)
)
CTCTRACK_IDLE_TIMEOUT_SECONDS = envint("CTCTRACK_IDLE_TIMEOUT_SECONDS", str(15 * 60))
# Clinic workstations are shared: closing the browser ends the session too.
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Messages name patients ("Acknowledged cycle 1 for ..."): kept in the session, on the
# server, never in a cookie (Django's default puts them in one first).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Access log (docs/audit.md) ------------------------------------------------
# How many reverse proxies of ours stand in front of the app, each appending the
# address it received from to X-Forwarded-For. 0: the access log records
# REMOTE_ADDR and ignores X-Forwarded-For (which any client can send).
# N > 0 TRUSTS THE N-TH ADDRESS FROM THE RIGHT of X-Forwarded-For, whoever sent the
# request: if a client can reach the app server without passing through those N
# proxies, it writes that address itself, forging the access log and escaping the
# sign-in lockout by changing it on each try. So gunicorn listens on a Unix socket
# by default and warns at start on a reachable TCP address (gunicorn.conf.py);
# check --deploy warns above 2 (ctctrack.W002). docs/deployment.md, nginx.
CTCTRACK_TRUSTED_PROXY_COUNT = envint("CTCTRACK_TRUSTED_PROXY_COUNT", "0")

# --- The access log's keyed chain and its checkpoints (docs/audit.md) ----------
# The secret that keys the log's hash chain (HMAC-SHA256). Held outside the
# database, so whoever can write the log's table cannot re-chain it after an
# edit. Unset, a key is derived from SECRET_KEY (check --deploy warns: give the
# log a key of its own, so that rotating SECRET_KEY does not strand the log).
CTCTRACK_AUDIT_KEY = os.getenv("CTCTRACK_AUDIT_KEY", "")
# Rotating it (docs/audit.md, "Rotating the audit key"): each event keeps the label
# of the key it was keyed with. CTCTRACK_AUDIT_KEY_ID labels the current key ("":
# the key from before labels); CTCTRACK_AUDIT_RETIRED_KEYS holds the keys retired
# from it, by label, oldest first, as a JSON object, so that their events still
# verify: {"": "<the first key>", "2027-01": "<the next>"}.
CTCTRACK_AUDIT_KEY_ID = os.getenv("CTCTRACK_AUDIT_KEY_ID", "")
CTCTRACK_AUDIT_RETIRED_KEYS = os.getenv("CTCTRACK_AUDIT_RETIRED_KEYS", "")
# Where `manage.py audit_checkpoint` appends its signed checkpoints by default, and
# where `verify_audit` reads them: a file the database's administrators cannot
# change (another host's mount, a write-once bucket synced from it). Empty: none.
CTCTRACK_AUDIT_CHECKPOINT_FILE = os.getenv("CTCTRACK_AUDIT_CHECKPOINT_FILE", "")

# --- Sign-in throttling (django-axes) ------------------------------------------
# Five failures from one address for one username lock that pair for 15 minutes
# (by the pair, so nobody can lock a colleague out from another machine). Each
# further failure while locked restarts the 15 minutes.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The client's address as the access log sees it: behind CTCTRACK_TRUSTED_PROXY_COUNT
# proxies of ours, from X-Forwarded-For; otherwise REMOTE_ADDR (a client cannot
# escape the lockout by sending X-Forwarded-For).
AXES_CLIENT_IP_CALLABLE = "patients.audit.chain.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "patients.accounts.backends.lockout_response"
# Never written to logs or to the attempts table in clear (`next` may carry a search).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "next"]

# --- Two-factor sign-in (django-otp: TOTP apps and one-time recovery codes) ----
# Required for every user in production; optional (but honoured once set up)
# for the local demo. Either way it can be set with the environment.
CTCTRACK_REQUIRE_MFA = envbool("CTCTRACK_REQUIRE_MFA", str(not DEBUG))
# The first authenticator app is enrolled only with a one-time code staff gave the user
# out of band (patients.models.MfaEnrolment), valid this many hours: a stolen password
# alone then cannot enrol the thief's phone. Off by default (a password enrols).
CTCTRACK_MFA_ENROLMENT_REQUIRED = envbool("CTCTRACK_MFA_ENROLMENT_REQUIRED", "False")
CTCTRACK_MFA_ENROLMENT_HOURS = envint("CTCTRACK_MFA_ENROLMENT_HOURS", "72")
OTP_TOTP_ISSUER = "CTC Track"
# Staff manage devices in admin without seeing anyone's secret or recovery codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- HTTPS and browser protections --------------------------------------------
# Behind a proxy that terminates TLS, name the header it sets for HTTPS requests,
# e.g. CTCTRACK_PROXY_SSL_HEADER=X-Forwarded-Proto (only if the proxy always sets
# or strips it: a client could otherwise claim HTTPS).
_proxy_ssl_header = os.getenv("CTCTRACK_PROXY_SSL_HEADER", "")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", str(not DEBUG))
# A load balancer probes the app server directly, often over plain HTTP; "ok" or "ready"
# is all it gets.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = 0 if DEBUG else 365 * 24 * 3600
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Preloading binds every subdomain of the organisation to HTTPS for good: only
# when asked for. check --deploy warns when it is off (W021), so that warning is
# silenced exactly then.
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "False")
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = not DEBUG
# No script reads the token: forms carry it in a hidden field.
CSRF_COOKIE_HTTPONLY = True
# A refused form post is recorded in the access log like every other refusal.
CSRF_FAILURE_VIEW = "patients.audit.views.csrf_failure"
if not DEBUG:
    # "__Host-": the browser only keeps these cookies from HTTPS, for this host and path "/".
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

# Content-Security-Policy (django-csp 4): only this site's own scripts, styles
# and images run or load; no inline script or style, no plugins, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous request gets 401 with a WWW-Authenticate header.
        "patients.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["patients.accounts.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "patients.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "patients.api.errors.exception_handler",
    "DATETIME_INPUT_FORMATS": ["iso-8601"],
    "COERCE_DECIMAL_TO_STRING": False,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# Every log line goes through one handler whose filter keeps patient data out:
# exception messages (which can quote SQL values or form input) and query strings
# are withheld; paths carry only record ids. Django's own handlers are replaced so
# that nothing bypasses the filter (and nothing is e-mailed with request data).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"no_phi": {"()": "ctctrack.logs.RedactPHIFilter"}},
    "formatters": {"plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"}},
    "handlers": {
        "console": {
            "class": "ctctrack.logs.StderrHandler",
            "filters": ["no_phi"],
            "formatter": "plain",
        }
    },
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # SQL with its parameters (patient data) is logged at DEBUG: never.
        "django.db.backends": {"handlers": [], "level": "INFO", "propagate": True},
        # Failures and lockouts are warnings; its INFO lines repeat every start.
        "axes": {"handlers": [], "level": "WARNING", "propagate": True},
        # Matplotlib's PDF backend subsets fonts with fontTools, which logs the glyphs it
        # kept at INFO: a report's characters (its patient's name among them), every time.
        "fontTools": {"handlers": [], "level": "WARNING", "propagate": True},
    },
}

# --- Clinical settings (see docs/clinical-rules.md) -------------------------
# Unfavourable when the rate per 7.5 mL is at or above the cut-off (inclusive).
CTC_CUTOFFS: dict[str, int] = {"breast": 5, "prostate": 5, "colorectal": 3}
# Draws count for a cycle when taken on day 1 or up to this many days before.
CTC_PRE_CYCLE_WINDOW_DAYS = envint("CTC_PRE_CYCLE_WINDOW_DAYS", "7")
# A sample is clear on its side of the cut-off when the chance that the true count is
# at or above it is at least this (unfavourable) or at most 1 - this (favourable):
# then a conversion or persistence is high, otherwise review.
CTC_CLEAR_PROBABILITY = envfraction("CTC_CLEAR_PROBABILITY", "0.90", low=0.5, high=1.0)
# The lab's variation between tubes beyond counting noise (a fraction). 0.0: the
# exact Poisson test alone. Set it from `manage.py estimate_replicate_cv`, by a person.
CTC_EXTRA_POISSON_CV = envfraction("CTC_EXTRA_POISSON_CV", "0.0", low=0.0, high=2.0)
# A high flag not acknowledged this many hours after its result is escalated, once.
CTC_ESCALATE_AFTER_HOURS = envint("CTC_ESCALATE_AFTER_HOURS", "24")
# The printable report of a patient with more draws than this is refused (the
# CSV export has them all): 5,000 draws take the PDF over 30 s of a worker.
CTCTRACK_REPORT_MAX_DRAWS = envint("CTCTRACK_REPORT_MAX_DRAWS", "1000")
# LOINC code per cancer type for exchange (confirm against the receiving system).
CTC_LOINC_CODES: dict[str, str] = {
    "breast": "67568-6",
    "prostate": "68123-9",
    "colorectal": "67568-6",
}

# --- Interoperability (docs/interoperability.md) ------------------------------
# The FHIR identifier system of this site's MRNs (its assigning authority).
# 2.999 is the OID arc reserved for examples: set your hospital's own.
CTCTRACK_MRN_SYSTEM = os.getenv("CTCTRACK_MRN_SYSTEM", "urn:oid:2.999.1")
# HL7 v2: the assigning authority (PID-3.4) of this hospital's MRNs, as its namespace
# id (e.g. HOSP) or universal id (e.g. an OID). Set, only an MR identifier it assigned
# is used; unset, the first MR identifier, whoever assigned it.
CTCTRACK_HL7_ASSIGNING_AUTHORITY = os.getenv("CTCTRACK_HL7_ASSIGNING_AUTHORITY", "")
# HL7 v2 over HTTP: more messages than this in one request are refused whole (AR), so
# that a request ends well inside GUNICORN_TIMEOUT and nothing is half-done. Measured:
# about 0.1 s a message on a busy 2-core machine, so 100 take some 10 s of the 30.
CTCTRACK_HL7_MAX_MESSAGES_PER_REQUEST = envint("CTCTRACK_HL7_MAX_MESSAGES_PER_REQUEST", "100")
# CSV imports of draws. drawn_at is ISO 8601 ("2026-12-03 08:30"); "day-first" also
# reads 03/12/2026 08:30 as 3 December, "month-first" reads 12/3/2026 8:30 AM so.
CTCTRACK_CSV_DATE_FORMAT = os.getenv("CTCTRACK_CSV_DATE_FORMAT", "iso")
if CTCTRACK_CSV_DATE_FORMAT not in ("iso", "day-first", "month-first"):
    raise ImproperlyConfigured(
        f"CTCTRACK_CSV_DATE_FORMAT={CTCTRACK_CSV_DATE_FORMAT!r}: use iso, day-first or month-first"
    )
# Checking a file stops (and nothing is imported) past this many rows or seconds,
# well inside GUNICORN_TIMEOUT (30 s).
CTCTRACK_CSV_MAX_ROWS = envint("CTCTRACK_CSV_MAX_ROWS", "100000")
CTCTRACK_CSV_MAX_SECONDS = envint("CTCTRACK_CSV_MAX_SECONDS", "20")

# --- E-mail: escalations of high results (manage.py escalate_flags) -----------
# No e-mail carries patient data: it says how many results wait and links to them.
# EMAIL_URL, when set, gives the backend, server, account, TLS and timeout in one:
# smtp://host:25, submission://user:password@host:587 (STARTTLS), smtp://host:465?ssl=True,
# with `?_default_from_email=...` optionally. Otherwise the EMAIL_* variables below.
# With neither and DEBUG on, mail is printed to the console; in production it goes
# to an SMTP server on localhost:25 (a local relay) unless configured.
_SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def email_settings(url: str) -> dict[str, Any]:
    """The EMAIL_* settings that an EMAIL_URL gives (dj-email-url), checked."""
    parsed = dj_email_url.parse(url)
    if "EMAIL_BACKEND" not in parsed:
        schemes = ", ".join(f"{scheme}://" for scheme in dj_email_url.SCHEMES)
        raise ImproperlyConfigured(f"EMAIL_URL: unknown scheme; use one of {schemes}")
    return {
        **parsed,
        "EMAIL_HOST": parsed["EMAIL_HOST"] or "localhost",
        "EMAIL_PORT": parsed["EMAIL_PORT"] or 25,
        "EMAIL_HOST_USER": parsed["EMAIL_HOST_USER"] or "",
        "EMAIL_HOST_PASSWORD": parsed["EMAIL_HOST_PASSWORD"] or "",
        "EMAIL_TIMEOUT": parsed["EMAIL_TIMEOUT"] or envint("EMAIL_TIMEOUT", "30"),
    }


_email_url = os.getenv("EMAIL_URL", "")
_email: dict[str, Any] = email_settings(_email_url) if _email_url else {}
_email_configured = bool(_email_url or os.getenv("EMAIL_HOST"))
EMAIL_BACKEND = _email.get(
    "EMAIL_BACKEND",
    os.getenv(
        "EMAIL_BACKEND",
        _SMTP_BACKEND
        if _email_configured or not DEBUG
        else "django.core.mail.backends.console.EmailBackend",
    ),
)
EMAIL_HOST = _email.get("EMAIL_HOST", os.getenv("EMAIL_HOST", "localhost"))
EMAIL_PORT = _email.get("EMAIL_PORT", envint("EMAIL_PORT", "25"))
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", os.getenv("EMAIL_HOST_USER", ""))
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", os.getenv("EMAIL_HOST_PASSWORD", ""))
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", envbool("EMAIL_USE_TLS", "False"))
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", envbool("EMAIL_USE_SSL", "False"))
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL: set one of them, not both")
# Seconds an SMTP connection may block: a hung server must not hang the job.
EMAIL_TIMEOUT = _email.get("EMAIL_TIMEOUT", envint("EMAIL_TIMEOUT", "30"))
DEFAULT_FROM_EMAIL = _email.get(
    "DEFAULT_FROM_EMAIL", os.getenv("DEFAULT_FROM_EMAIL", "CTC Track <ctctrack@localhost>")
)
SERVER_EMAIL = _email.get("SERVER_EMAIL", os.getenv("SERVER_EMAIL", DEFAULT_FROM_EMAIL))
if EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend":
    EMAIL_FILE_PATH = _email.get("EMAIL_FILE_PATH") or os.getenv("EMAIL_FILE_PATH", "")


def base_url(value: str) -> str:
    """CTCTRACK_BASE_URL checked: scheme and host, no trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ImproperlyConfigured(
            f"CTCTRACK_BASE_URL={value!r}: use the address users open, e.g. "
            "https://ctctrack.hospital.example"
        )
    return value.rstrip("/")


# The address users open the app at: links in e-mails are built on it. By default
# the first host name of ALLOWED_HOSTS over HTTPS in production, `make run`'s locally.
_first_host = next((h for h in ALLOWED_HOSTS if h != "*" and not h.startswith(".")), "")
CTCTRACK_BASE_URL = base_url(
    os.getenv(
        "CTCTRACK_BASE_URL",
        "http://127.0.0.1:8000" if DEBUG or not _first_host else f"https://{_first_host}",
    )
)

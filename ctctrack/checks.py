"""The project's own system checks: the safeguards that Django's checks do not see.

`python manage.py check` runs the ones that hold in every environment (a weak
Content-Security-Policy or an unlimited session is never right);
`check --deploy` adds those for production (`make check-deploy`, run by CI).
docs/security.md maps each to the HIPAA and ASVS requirement it protects.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import connections
from django.utils.module_loading import import_string

MAX_SESSION_AGE_SECONDS = 12 * 3600
MAX_LOGIN_FAILURES = 5
UNSAFE_SCRIPT_SOURCES = {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"}

PROJECT_MIDDLEWARE = [
    "csp.middleware.CSPMiddleware",
    "ctctrack.middleware.NoStoreMiddleware",
    "ctctrack.middleware.DatabaseUnavailableMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "patients.accounts.middleware.SessionTimeoutMiddleware",
    "patients.accounts.middleware.RequireMFAMiddleware",
    "axes.middleware.AxesMiddleware",
]


@register(Tags.security)
def check_middleware(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Every safeguard that runs as middleware is installed."""
    return [
        Error(
            f"{path} is missing from MIDDLEWARE.",
            hint="See settings.MIDDLEWARE in the repository for its place and why.",
            id="ctctrack.E001",
        )
        for path in PROJECT_MIDDLEWARE
        if path not in settings.MIDDLEWARE
    ]


@register(Tags.security)
def check_content_security_policy(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Scripts come only from this site: no inline or eval'd script, no other host."""
    policy = getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}
    directives = policy.get("DIRECTIVES") or {}
    scripts = directives.get("script-src", directives.get("default-src"))
    if not scripts:
        return [
            Error(
                "CONTENT_SECURITY_POLICY sets neither script-src nor default-src.",
                hint="Set script-src to [SELF] (csp.constants).",
                id="ctctrack.E002",
            )
        ]
    unsafe = sorted(UNSAFE_SCRIPT_SOURCES.intersection(scripts))
    if unsafe:
        return [
            Error(
                f"CONTENT_SECURITY_POLICY lets scripts run from {', '.join(unsafe)}.",
                hint="Move the script into a static file and allow only [SELF].",
                id="ctctrack.E003",
            )
        ]
    return []


@register(Tags.security)
def check_session_limits(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Sessions end after at most 12 hours in all, and sooner when idle."""
    max_age = getattr(settings, "CTCTRACK_SESSION_MAX_AGE_SECONDS", None)
    idle = getattr(settings, "CTCTRACK_IDLE_TIMEOUT_SECONDS", None)
    errors: list[CheckMessage] = []
    if not isinstance(max_age, int) or not 0 < max_age <= MAX_SESSION_AGE_SECONDS:
        errors.append(
            Error(
                f"CTCTRACK_SESSION_MAX_AGE_SECONDS is {max_age!r}; "
                f"it must be between 1 and {MAX_SESSION_AGE_SECONDS} (12 hours).",
                id="ctctrack.E004",
            )
        )
    elif max_age < settings.SESSION_COOKIE_AGE:
        errors.append(
            Error(
                "SESSION_COOKIE_AGE is longer than CTCTRACK_SESSION_MAX_AGE_SECONDS.",
                hint="Set SESSION_COOKIE_AGE = CTCTRACK_SESSION_MAX_AGE_SECONDS.",
                id="ctctrack.E005",
            )
        )
    if not isinstance(idle, int) or idle <= 0 or (isinstance(max_age, int) and idle > max_age):
        errors.append(
            Error(
                f"CTCTRACK_IDLE_TIMEOUT_SECONDS is {idle!r}; it must be a positive number "
                "of seconds, no longer than the session's maximum age.",
                id="ctctrack.E006",
            )
        )
    return errors


@register(Tags.security, deploy=True)
def check_login_throttling(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """django-axes locks a username and address after at most 5 failures, for a while."""
    problems = _login_throttling_problems()
    return [
        Error(
            f"Sign-in throttling is not configured: {problem}.",
            hint="See the django-axes settings in ctctrack/settings.py.",
            id="ctctrack.E007",
        )
        for problem in problems
    ]


def _login_throttling_problems() -> list[str]:
    if "axes" not in settings.INSTALLED_APPS:
        return ["'axes' is not in INSTALLED_APPS"]
    problems = []
    backends = settings.AUTHENTICATION_BACKENDS
    if not backends or not issubclass(import_string(backends[0]), AxesStandaloneBackend):
        problems.append("the first of AUTHENTICATION_BACKENDS is not an axes backend")
    if not getattr(settings, "AXES_ENABLED", True):
        problems.append("AXES_ENABLED is False")
    limit = getattr(settings, "AXES_FAILURE_LIMIT", None)
    if not isinstance(limit, int) or not 0 < limit <= MAX_LOGIN_FAILURES:
        problems.append(f"AXES_FAILURE_LIMIT is {limit!r}, not 1 to {MAX_LOGIN_FAILURES}")
    cool_off = getattr(settings, "AXES_COOLOFF_TIME", None)
    if not isinstance(cool_off, timedelta) or cool_off <= timedelta(0):
        problems.append("AXES_COOLOFF_TIME is not a positive timedelta")
    parameters = getattr(settings, "AXES_LOCKOUT_PARAMETERS", None) or []
    if not any("username" in p for p in parameters):
        problems.append("AXES_LOCKOUT_PARAMETERS does not lock by username")
    return problems


@register(Tags.security, deploy=True)
def check_mfa_required(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Production asks every user for a second factor."""
    if settings.DEBUG or getattr(settings, "CTCTRACK_REQUIRE_MFA", False):
        return []
    return [
        CheckWarning(
            "CTCTRACK_REQUIRE_MFA is False in production: users may sign in with a password alone.",
            hint="Remove CTCTRACK_REQUIRE_MFA=False from the environment (True is the default "
            "when DEBUG is False).",
            id="ctctrack.W001",
        )
    ]


# A load balancer and nginx: more proxies of ours that each append to X-Forwarded-For
# is unusual enough to be a mistake, and every hop trusted beyond the real ones is an
# address the client writes itself.
MAX_USUAL_TRUSTED_PROXIES = 2


@register(Tags.security, deploy=True)
def check_trusted_proxy_count(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """CTCTRACK_TRUSTED_PROXY_COUNT is a small whole number of proxies.

    What it cannot see: whether the app server is reachable without those proxies
    (gunicorn's bind is not a Django setting). gunicorn.conf.py warns at start for that.
    """
    count = getattr(settings, "CTCTRACK_TRUSTED_PROXY_COUNT", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        return [
            Error(
                f"CTCTRACK_TRUSTED_PROXY_COUNT is {count!r}; it must be a whole number, 0 or more.",
                hint="0 without a proxy, 1 behind nginx alone, 2 behind a load balancer and nginx.",
                id="ctctrack.E008",
            )
        ]
    if count > MAX_USUAL_TRUSTED_PROXIES:
        return [
            CheckWarning(
                f"CTCTRACK_TRUSTED_PROXY_COUNT is {count}: the client's address is taken "
                f"{count} places from the right of X-Forwarded-For. If fewer than {count} "
                "proxies of ours append to it, the client chooses the address the access "
                "log records and the sign-in lockout counts.",
                hint="Set it to the number of proxies of ours that append to X-Forwarded-For "
                "(1 behind nginx alone). If there really are more, silence ctctrack.W002.",
                id="ctctrack.W002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_audit_key(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """The access log's chain has a key of its own, not one derived from SECRET_KEY."""
    if getattr(settings, "CTCTRACK_AUDIT_KEY", ""):
        return []
    return [
        CheckWarning(
            "CTCTRACK_AUDIT_KEY is not set: the access log's chain is keyed with a key derived "
            "from SECRET_KEY, so rotating SECRET_KEY would make every event fail verification.",
            hint="Generate a key of its own (python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'), keep it outside the database and set "
            "CTCTRACK_AUDIT_KEY before the first event is written. See docs/audit.md.",
            id="ctctrack.W003",
        )
    ]


@register(Tags.security)
def check_audit_keys(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """The audit key's label fits, and the retired keys can be read (docs/audit.md)."""
    from django.core.exceptions import ImproperlyConfigured

    from patients.audit import chain

    errors: list[CheckMessage] = []
    label = chain.audit_key_id()
    if len(label) > chain.KEY_ID_LENGTH:
        errors.append(
            Error(
                f"CTCTRACK_AUDIT_KEY_ID is longer than {chain.KEY_ID_LENGTH} characters.",
                id="ctctrack.E009",
            )
        )
    if label and not getattr(settings, "CTCTRACK_AUDIT_KEY", ""):
        errors.append(
            Error(
                "CTCTRACK_AUDIT_KEY_ID labels a key, but CTCTRACK_AUDIT_KEY is not set.",
                hint="A rotated key is a key of its own: set CTCTRACK_AUDIT_KEY to it.",
                id="ctctrack.E009",
            )
        )
    try:
        retired = chain.retired_keys()
    except ImproperlyConfigured as exc:
        return [*errors, Error(str(exc), id="ctctrack.E009")]
    if label in retired:
        errors.append(
            Error(
                f"CTCTRACK_AUDIT_RETIRED_KEYS holds the current key's label {label!r}.",
                hint="A rotated key takes a new label (CTCTRACK_AUDIT_KEY_ID); the retired "
                "keys keep theirs. See docs/audit.md, 'Rotating the audit key'.",
                id="ctctrack.E009",
            )
        )
    return errors


# What the application's database role must not be able to do to the access log
# (docs/audit.md gives the REVOKE statements): change or empty it, or write the
# maintenance table whose row lets the delete triggers through.
AUDIT_LOG_TABLE = "patients_accessevent"
# The patients an event listed (`AccessEventPatient`): part of the log, guarded alike.
AUDIT_LISTED_TABLE = "patients_accesseventpatient"
AUDIT_MAINTENANCE_TABLE = "patients_audit_maintenance"
FORBIDDEN_ON_THE_LOG = ("UPDATE", "DELETE", "TRUNCATE")
FORBIDDEN_ON_MAINTENANCE = ("INSERT", "UPDATE", "DELETE")
FORBIDDEN = (
    (AUDIT_LOG_TABLE, FORBIDDEN_ON_THE_LOG),
    (AUDIT_LISTED_TABLE, FORBIDDEN_ON_THE_LOG),
    (AUDIT_MAINTENANCE_TABLE, FORBIDDEN_ON_MAINTENANCE),
)


@register(Tags.database, deploy=True)
def check_audit_log_privileges(
    app_configs: Any, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """On PostgreSQL, the app's role can only read the access log and append to it.

    A database check: it runs with `check --deploy --database default`.
    """
    warnings: list[CheckMessage] = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        problems = audit_log_privilege_problems(_audit_log_privileges(connection))
        warnings.extend(
            CheckWarning(
                f"Database {alias!r}: the application's role {problem}.",
                hint="Run migrations as the owner and the app as a role limited by the REVOKE "
                "statements in docs/audit.md.",
                id="ctctrack.W004",
            )
            for problem in problems
        )
    return warnings


def _audit_log_privileges(connection: Any) -> dict[str, Any]:
    with connection.cursor() as cursor:
        # to_regclass: NULL (no row) for a table not migrated yet, where ::regclass raises.
        cursor.execute(
            "SELECT relname FROM pg_class WHERE oid = ANY(ARRAY[to_regclass(%s), "
            "to_regclass(%s)]) AND pg_get_userbyid(relowner) = current_user",
            [AUDIT_LOG_TABLE, AUDIT_LISTED_TABLE],
        )
        owned = sorted(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [AUDIT_LISTED_TABLE])
        migrated = bool(cursor.fetchone()[0])
        held = {}
        for table, privileges in FORBIDDEN:
            if table == AUDIT_LISTED_TABLE and not migrated:
                continue
            for privilege in privileges:
                cursor.execute(
                    "SELECT has_table_privilege(current_user, %s, %s)", [table, privilege]
                )
                held[(table, privilege)] = bool(cursor.fetchone()[0])
    return {"owns": owned, "held": held}


def audit_log_privilege_problems(privileges: dict[str, Any]) -> list[str]:
    """In words, what the role can do to the access log that it should not."""
    problems = [
        f"owns {table}, so it can switch the append-only triggers off"
        for table in privileges["owns"]
    ]
    for table, forbidden in FORBIDDEN:
        can = [p for p in forbidden if privileges["held"].get((table, p))]
        if can:
            problems.append(f"may {', '.join(can)} {table}")
    return problems

"""`make audit-deps`: pip-audit over constraints.txt, telling "audited, none found" from
"the advisory database could not be reached" (skipped, not a failure) and failing on a
known vulnerability.

The verdicts are checked on pip-audit reports of each shape; one real run goes
through a proxy that does not answer, as on a machine that cannot reach the database.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.paths import ROOT

SCRIPT = ROOT / "scripts" / "audit_dependencies.py"
SKIPPED = "dependency audit skipped: the advisory database could not be reached"
NOT_FOUND = "Dependency not found on PyPI and could not be audited: {0} ({1})"


@pytest.fixture(scope="module")
def audit() -> Iterator[ModuleType]:
    """The script as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
    assert spec and spec.loader, f"{SCRIPT} is missing"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _dep(name: str, version: str = "1.0", vulns: list[dict[str, Any]] | None = None) -> dict:
    return {"name": name, "version": version, "vulns": vulns or []}


def _skipped(name: str, version: str = "1.0") -> dict:
    return {"name": name, "skip_reason": NOT_FOUND.format(name, version)}


def _vuln(vid: str, *fixes: str) -> dict[str, Any]:
    return {"id": vid, "fix_versions": list(fixes), "aliases": [], "description": "..."}


def _run(audit: ModuleType, deps: list[dict] | None, status: int = 0, stderr: str = ""):
    report = None if deps is None else {"dependencies": deps, "fixes": []}
    return audit.Run(status=status, report=report, stderr=stderr)


@pytest.fixture
def canary_with_advisories(audit):
    return lambda: _run(audit, [_dep("django", "3.2", [_vuln("PYSEC-2021-98", "3.2.1")])], 1)


def _never_asked():
    raise AssertionError("the canary is asked only once the pinned packages were looked up")


# --- the verdicts ------------------------------------------------------------------------


def test_every_package_skipped_as_not_found_is_unreachable_not_clean(audit):
    # What PyPI's JSON API gives here: the project pages, but 404 for every release.
    main = _run(audit, [_skipped("django", "5.2.19"), _skipped("numpy", "2.4.6")])

    verdict = audit.verdict(main, canary=_never_asked)

    assert verdict.ok
    assert verdict.lines[0] == SKIPPED
    assert not any("no known vulnerabilities" in line for line in verdict.lines)


@pytest.mark.parametrize(
    "stderr",
    [
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): "
        "Max retries exceeded with url: /pypi/django/5.2.19/json",
        "requests.exceptions.ProxyError: Unable to connect to proxy",
        "ERROR:pip_audit._cli:Could not connect to PyPI's vulnerability feed\n"
        "Tip: your network may be blocking this service. Try another service with `-s SERVICE`",
        "pip_audit._service.interface.ServiceError",
    ],
)
def test_a_network_failure_without_a_report_is_unreachable(audit, stderr):
    verdict = audit.verdict(_run(audit, None, 1, stderr), canary=_never_asked)

    assert (verdict.ok, verdict.lines[0]) == (True, SKIPPED)


def test_a_database_that_names_no_advisory_for_the_canary_was_not_reached(audit):
    # A mirror that serves release pages without PyPI's vulnerability data.
    main = _run(audit, [_dep("django", "5.2.19")])

    verdict = audit.verdict(main, canary=lambda: _run(audit, [_dep("django", "3.2")]))

    assert (verdict.ok, verdict.lines[0]) == (True, SKIPPED)


def test_audited_and_none_found_says_so_with_the_count(audit, canary_with_advisories):
    main = _run(audit, [_dep("django", "5.2.19"), _dep("numpy", "2.4.6")])

    verdict = audit.verdict(main, canary=canary_with_advisories)

    assert verdict.ok
    assert verdict.lines == [
        "dependency audit: 2 pinned packages audited, no known vulnerabilities"
    ]


def test_a_known_vulnerability_fails_naming_package_advisory_and_fix(audit):
    main = _run(audit, [_dep("django", "5.2.19", [_vuln("GHSA-xxxx", "5.2.20")]), _dep("x")], 1)

    verdict = audit.verdict(main, canary=_never_asked)

    assert not verdict.ok
    assert "1 known vulnerability" in verdict.lines[0]
    assert any("django 5.2.19: GHSA-xxxx (fixed in 5.2.20)" in line for line in verdict.lines)


def test_a_package_the_reachable_database_cannot_look_up_fails(audit, canary_with_advisories):
    main = _run(audit, [_dep("django", "5.2.19"), _skipped("private-thing")])

    verdict = audit.verdict(main, canary=canary_with_advisories)

    assert not verdict.ok
    assert "private-thing" in " ".join(verdict.lines)


@pytest.mark.parametrize(
    "status, stderr",
    [(2, "pip-audit: error: unrecognized arguments: --bogus"), (1, "KeyError: 'vulns'")],
)
def test_pip_audit_failing_for_another_reason_fails(audit, status, stderr):
    verdict = audit.verdict(_run(audit, None, status, stderr), canary=_never_asked)

    assert not verdict.ok
    assert SKIPPED not in verdict.lines


# --- a real run, and the wiring ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_through_a_proxy_that_does_not_answer_it_is_skipped_not_clean(tmp_path):
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env |= {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "PIP_CACHE_DIR": str(tmp_path)}

    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == SKIPPED
    assert "no known vulnerabilities" not in done.stdout.lower()


def test_make_and_ci_run_the_audit():
    makefile = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()

    assert "audit-deps:" in makefile and "scripts/audit_dependencies.py" in makefile
    assert "make audit-deps" in ci

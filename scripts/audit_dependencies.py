"""Known vulnerabilities in the pinned packages: pip-audit over constraints.txt.

`make audit-deps` (and .ci/run) runs this. pip-audit looks each pinned release up
in PyPI's JSON API, which carries the advisories (from OSV). It audits the pins
as written, without installing or resolving anything (`--no-deps
--disable-pip`: constraints.txt pins every package, dependencies included).

Three answers, never confused:
- a known vulnerability, or a pinned package the database cannot look up: fail;
- every package looked up and none vulnerable: say how many, succeed;
- the advisory database could not be reached: say so, and succeed (a machine
  without it cannot audit, and must not fail for that). pip-audit itself says
  "No known vulnerabilities found" when every lookup was skipped, or when a
  mirror serves the releases without advisories; so "reached" here means that
  packages were looked up *and* a release with published advisories (the
  canary) gets them back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
# Django 3.2.0 has dozens of published advisories: a database that names none for it
# did not answer with advisories at all.
CANARY = "django==3.2"
FLAGS = ["--no-deps", "--disable-pip", "--progress-spinner", "off", "--format", "json"]
SKIPPED = "dependency audit skipped: the advisory database could not be reached"
# What pip-audit (through requests) prints when it cannot talk to the database.
NETWORK_FAILURES = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "ProxyError",
    "SSLError",
    "Max retries exceeded",
    "NameResolutionError",
    "Could not connect",
    "network may be blocking",
    "ServiceError",
)


@dataclass(frozen=True)
class Run:
    """One pip-audit run: its exit status, its JSON report (None: it wrote none), stderr."""

    status: int
    report: dict[str, Any] | None
    stderr: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: list[str]


def pip_audit(requirements: Path) -> Run:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "-r", str(requirements), *FLAGS]
        done = subprocess.run(  # our own interpreter, fixed arguments
            [*command, "--output", str(output)], capture_output=True, text=True, check=False
        )
        text = output.read_text() if output.exists() else ""
    return Run(done.returncode, json.loads(text) if text.strip() else None, done.stderr)


def pip_audit_canary() -> Run:
    with tempfile.TemporaryDirectory() as folder:
        requirements = Path(folder) / "canary.txt"
        requirements.write_text(CANARY + "\n")
        return pip_audit(requirements)


def _audited(run: Run) -> list[dict[str, Any]]:
    return [d for d in (run.report or {}).get("dependencies", []) if "skip_reason" not in d]


def _skipped(run: Run) -> list[dict[str, Any]]:
    return [d for d in (run.report or {}).get("dependencies", []) if "skip_reason" in d]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def unreachable_reason(run: Run) -> str | None:
    """Why `run` says nothing about vulnerabilities because nothing was looked up, or None."""
    if run.report is None:
        network = any(sign in run.stderr for sign in NETWORK_FAILURES)
        return _last_line(run.stderr) if network else None
    if not _audited(run):
        skipped = _skipped(run)
        first = skipped[0]["skip_reason"] if skipped else "no package in the report"
        return f"no package could be looked up ({len(skipped)} skipped), e.g. {first}"
    return None


def canary_reason(run: Run) -> str | None:
    """Why the canary shows the database did not answer with advisories, or None."""
    reason = unreachable_reason(run)
    if reason is None and run.report is None:
        return f"the check with {CANARY} failed: {_last_line(run.stderr)}"
    if reason is None and not any(d.get("vulns") for d in _audited(run)):
        return f"it names no advisory for {CANARY}, which has published ones"
    return reason


def verdict(main: Run, canary: Callable[[], Run]) -> Verdict:
    """What the audit of the pins says; `canary` is asked only when the pins were looked up."""
    vulnerable = [d for d in _audited(main) if d.get("vulns")]
    if vulnerable:
        return _vulnerable(vulnerable)
    if main.report is None and unreachable_reason(main) is None:
        return Verdict(False, [f"dependency audit failed: pip-audit: {_last_line(main.stderr)}"])
    reason = unreachable_reason(main) or canary_reason(canary())
    if reason is not None:
        return Verdict(True, [SKIPPED, f"  why: {reason}"])
    if skipped := _skipped(main):
        names = ", ".join(d["name"] for d in skipped)
        return Verdict(False, [f"dependency audit failed: not found in the database: {names}"])
    count = len(_audited(main))
    return Verdict(
        True, [f"dependency audit: {count} pinned packages audited, no known vulnerabilities"]
    )


def _vulnerable(dependencies: list[dict[str, Any]]) -> Verdict:
    found = [(d, v) for d in dependencies for v in d["vulns"]]
    plural = "vulnerability" if len(found) == 1 else "vulnerabilities"
    lines = [f"dependency audit failed: {len(found)} known {plural} in the pinned packages:"]
    for dependency, vuln in found:
        fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
        aliases = ", ".join(vuln.get("aliases") or [])
        also = f" [{aliases}]" if aliases else ""
        lines.append(
            f"  {dependency['name']} {dependency['version']}: {vuln['id']}{also} (fixed in {fixes})"
        )
    lines.append("Upgrade the pin in requirements*.txt, run `make lock`, review the diff.")
    return Verdict(False, lines)


def main() -> int:
    result = verdict(pip_audit(CONSTRAINTS), canary=pip_audit_canary)
    print("\n".join(result.lines))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

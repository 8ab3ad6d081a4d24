"""Every installed package is pinned, so a fresh machine gets exactly what CI tested."""

from __future__ import annotations

import re
from importlib import metadata

from tests.paths import ROOT

# The installer's own tools come with the virtual environment, not from the project.
INSTALLER = {"pip", "setuptools", "wheel"}


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.split("#")[0].strip()):
            pins[_normal(match[1])] = match[2]
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_installed_package_is_pinned_in_the_constraints_at_its_version():
    constraints = _pins("constraints.txt")
    installed = {
        _normal(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if _normal(d.metadata["Name"]) not in INSTALLER
    }

    unpinned = {name: v for name, v in installed.items() if constraints.get(name) != v}

    assert unpinned == {}, "run `make lock` and commit constraints.txt"


def test_the_requirements_and_the_constraints_agree():
    constraints = _pins("constraints.txt")
    for name in ("requirements.txt", "requirements-dev.txt"):
        for package, version in _pins(name).items():
            assert constraints.get(package) == version, f"{name}: {package}=={version}"


def test_every_package_pinned_in_the_constraints_is_installed():
    installed = {_normal(d.metadata["Name"]) for d in metadata.distributions()}

    stale = sorted(set(_pins("constraints.txt")) - installed)

    assert stale == [], "a package no longer required is still pinned: run `make lock`"


def test_a_package_is_required_in_one_requirements_file_only():
    runtime, dev = _pins("requirements.txt"), _pins("requirements-dev.txt")

    assert sorted(runtime.keys() & dev.keys()) == []

"""requirements.lock, which deploy/Dockerfile installs with ``--require-hashes``, is in step with
pyproject.toml: every runtime dependency is pinned at a version pyproject allows, every pin is
exact and hashed, and what the pinned distributions need is pinned too. Offline: it reads
pyproject, the lock and the metadata of the distributions installed here."""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[0-9][^\s=;]*)")

# The newest release of each with a published security advisory: the floor must be above it.
# aiohttp 3.14.2: GHSA-cq5v-8q36-5273 (out-of-bounds read in the C response parser, fixed in
# 3.14.3); 3.14.1: GHSA-mfx4-hv73-q22v, GHSA-mq44-7p77-q5h7 (fixed in 3.14.2).
ADVISORIES = {"aiohttp": "3.14.2"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Pin:
    name: str
    version: Version
    hashes: tuple[str, ...]


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in project["dependencies"]]


def logical_lines(text: str) -> list[str]:
    """The lock's entries: continuation lines joined, comments and blank lines dropped."""
    entries, current = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        current += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\") and current.strip():
            entries.append(current.strip())
            current = ""
    return entries


def read_lock() -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    for entry in logical_lines(LOCK.read_text(encoding="utf-8")):
        requirement, *options = entry.split()
        assert all(HASH.fullmatch(o) for o in options), f"not a sha256 hash: {entry}"
        pinned = PIN.fullmatch(requirement)
        assert pinned, f"not pinned exactly: {requirement}"
        key = canonicalize_name(pinned["name"])
        assert key not in pins, f"pinned twice: {key}"
        pins[key] = Pin(name=key, version=Version(pinned["version"]), hashes=tuple(options))
    return pins


def test_every_runtime_dependency_is_pinned_at_a_version_pyproject_allows() -> None:
    pins = read_lock()
    for requirement in runtime_requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement} is not in requirements.lock"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"requirements.lock pins {pin.name}=={pin.version}, pyproject wants {requirement}"
        )


def test_every_pin_carries_a_hash() -> None:
    pins = read_lock()
    assert pins
    unhashed = [p.name for p in pins.values() if not p.hashes]
    assert unhashed == [], f"pinned without --hash: {unhashed}"


def test_what_the_pinned_distributions_need_is_pinned_too() -> None:
    # The metadata read is the installed distribution's, so only a pin at the installed version
    # is checked: a newer release installed here may need what the locked one does not.
    pins = read_lock()
    checked, missing = 0, []
    for pin in pins.values():
        try:
            installed = metadata.distribution(pin.name)
        except metadata.PackageNotFoundError:
            continue
        if Version(installed.version) != pin.version:
            continue
        checked += 1
        for line in installed.requires or []:
            need = Requirement(line)
            if need.marker is not None and not need.marker.evaluate({"extra": ""}):
                continue
            locked = pins.get(canonicalize_name(need.name))
            if locked is None or not need.specifier.contains(locked.version, prereleases=True):
                missing.append(f"{pin.name}=={pin.version} needs {need}")
    assert missing == [], (
        f"requirements.lock is not closed, regenerate it (see its header): {missing}"
    )
    assert checked, "no distribution installed here is at its locked version"


def test_the_floors_are_past_published_advisories() -> None:
    for requirement in runtime_requirements():
        bad = ADVISORIES.get(canonicalize_name(requirement.name))
        if bad is not None:
            assert not requirement.specifier.contains(bad), f"{requirement} allows {bad}"


def test_the_lock_says_how_to_regenerate_it() -> None:
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    header = list(itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert any(
        "pip-compile --generate-hashes" in line and line.endswith(" pyproject.toml")
        for line in header
    ), header

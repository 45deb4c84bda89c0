"""The external validators the deploy and metrics tests run, found or fetched on demand.

CI starts from a fresh machine, so nothing here may assume a tool was installed by hand. Each
function returns the tool's path, fetching it into ``.tools/`` (gitignored) the first time,
from the package registries this project already uses: promtool out of Debian's ``prometheus``
package (downloaded and unpacked, never installed as a service), the KEDA CRD schema out of the
npm package ``@kubernetes-models/keda``. A tool that is absent and cannot be fetched raises
``ToolMissingError``: the test fails with the reason, it is never skipped.

``python -m tests.tools`` fetches everything ahead of time.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
KEDA_MODELS = "@kubernetes-models/keda@0.4.2"  # schemas generated from KEDA 2.10.1's CRDs


class ToolMissingError(RuntimeError):
    """A validator is not here and could not be fetched."""


@contextmanager
def _locked() -> Iterator[None]:
    # Two test processes fetching at once would race on the same files.
    TOOLS.mkdir(exist_ok=True)
    with (TOOLS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=600
    )


def _venv_script(name: str) -> Path:
    """A console script installed beside this interpreter (the test extra's tools)."""
    found = Path(sys.executable).parent / name
    if found.exists():
        return found
    which = shutil.which(name)
    if which is None:
        raise ToolMissingError(f"{name} is not installed: pip install -e '.[test]'")
    return Path(which)


def hadolint() -> Path:
    return _venv_script("hadolint")


def kubernetes_validate() -> Path:
    return _venv_script("kubernetes-validate")


def systemd_analyze() -> Path:
    found = shutil.which("systemd-analyze")
    if found is None:
        raise ToolMissingError("systemd-analyze is not installed (Debian package systemd)")
    return Path(found)


def node() -> Path:
    found = shutil.which("node")
    if found is None:
        raise ToolMissingError("node is not installed (Debian package nodejs)")
    return Path(found)


def promtool() -> Path:
    """``$PROMTOOL``, else ``.tools/bin/promtool``, else one on PATH, else fetched."""
    if os.environ.get("PROMTOOL"):
        return Path(os.environ["PROMTOOL"])
    cached = TOOLS / "bin" / "promtool"
    with _locked():
        if cached.exists():
            return cached
        on_path = shutil.which("promtool")
        if on_path is not None:
            return Path(on_path)
        _fetch_promtool(cached)
    return cached


def _fetch_promtool(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        download = _run("apt-get", "download", "prometheus", cwd=work)
        if download.returncode != 0:
            # A fresh machine may have no package lists yet.
            _run("apt-get", "update")
            download = _run("apt-get", "download", "prometheus", cwd=work)
        debs = sorted(work.glob("prometheus_*.deb"))
        if download.returncode != 0 or not debs:
            raise ToolMissingError(
                f"cannot download Debian's prometheus: {download.stderr.strip()}"
            )
        unpacked = _run("dpkg-deb", "-x", str(debs[0]), str(work / "root"))
        binary = work / "root" / "usr" / "bin" / "promtool"
        if unpacked.returncode != 0 or not binary.exists():
            raise ToolMissingError(f"cannot unpack promtool: {unpacked.stderr.strip()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, target)


def keda_models() -> Path:
    """The directory of ``@kubernetes-models/keda``, whose validators embody KEDA's CRD schemas."""
    prefix = TOOLS / "node"
    package = prefix / "node_modules" / "@kubernetes-models" / "keda"
    with _locked():
        if (package / "package.json").exists():
            return package
        npm = shutil.which("npm")
        if npm is None:
            raise ToolMissingError("npm is not installed; it fetches the KEDA CRD schema")
        installed = _run(
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            "--no-save",
            KEDA_MODELS,
        )
        if installed.returncode != 0 or not (package / "package.json").exists():
            raise ToolMissingError(f"cannot install {KEDA_MODELS}: {installed.stderr.strip()}")
    return package


if __name__ == "__main__":
    for tool in (promtool, keda_models, hadolint, kubernetes_validate, systemd_analyze, node):
        print(f"{tool.__name__}: {tool()}")

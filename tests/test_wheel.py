"""The wheel, as other async services install it: its generated stubs are typed (PEP 561)
and it carries the API contract, service.proto, next to them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["jobs", "cli", "gen", "pki", "pyproject.toml", "README.md", "service.proto"]
"""What the build reads (the packages pyproject lists, and the files it names)."""
BACKEND_MAJOR = 75
"""pyproject's build-system requirement (setuptools>=75)."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built offline from a copy of the sources (the tree stays clean)."""
    try:
        backend = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        backend = "0"
    if int(backend.partition(".")[0]) < BACKEND_MAJOR:
        pytest.skip(f"needs setuptools>={BACKEND_MAJOR} (the build backend), not {backend}")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    caches = shutil.ignore_patterns("__pycache__")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=caches)
        else:
            shutil.copy(ROOT / name, source / name)
    built = work / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*command, "--no-index", "--quiet", "-w", str(built), str(source)],
        check=True,
        timeout=120,
    )
    (found,) = built.glob("jobs-*.whl")
    return found


def test_the_wheel_carries_the_marker_and_the_contract(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "gen/py.typed" in names
        assert "jobs/py.typed" in names
        assert archive.read("gen/service.proto") == (ROOT / "service.proto").read_bytes()


def test_mypy_strict_sees_typed_stubs_in_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("needs mypy in the test environment")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # what installing a pure-Python wheel amounts to
    user = tmp_path / "user"
    user.mkdir()  # away from the source tree, whose gen/ mypy would find first
    (user / "client.py").write_text(
        "from gen.jobs import v1 as pb\n"
        "reveal_type(pb.RunRequest)\n"
        "reveal_type(pb.JobServiceStub.run)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "client.py"],
        cwd=user,
        # On sys.path ahead of this environment's copy: mypy looks there for
        # installed packages, and follows PEP 561 (a py.typed marker) as for any.
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert "py.typed" not in output
    assert result.returncode == 0, output
    assert 'Revealed type is "def (' in output
    assert "gen.jobs.v1.RunRequest" in output
    assert "gen.jobs.v1.RunResponse" in output

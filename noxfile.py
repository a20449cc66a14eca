"""Automation for jobs: tests, lint, typecheck, proto, proto-check and bench sessions.

``nox`` alone runs the default sessions: tests, lint, typecheck and proto-check
(``nox -s proto`` regenerates gen/, ``nox -s bench`` measures).
"""

from __future__ import annotations

import filecmp

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["tests", "lint", "typecheck", "proto-check"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
CODE = ["jobs", "cli", "pki", "tests", "bench", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the installed package (real processes, TLS, cgroups)."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "test"))
    # `pytest` (not `python -m pytest`) imports the installed copy, so packaging is tested too.
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (gen/ is generated and excluded)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", *CODE)
    session.run("ruff", "format", "--check", *CODE)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check code, tests and this file with mypy --strict; check import layering."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy", *CODE)
    session.run("lint-imports")


PROTO_OUT = "gen"


def _generate(session: nox.Session, out: str) -> None:
    """Generate into ``out``: the stubs, a PEP 561 marker, and a copy of service.proto
    (so the wheel carries the contract next to its stubs)."""
    import shutil
    from pathlib import Path

    session.install(*nox.project.dependency_groups(PYPROJECT, "proto"))
    session.run(
        "python",
        "-m",
        "grpc_tools.protoc",
        "-I.",
        f"--python_betterproto_out={out}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        "service.proto",
    )
    # etcd's own API, trimmed to what jobs uses (jobs/_etcd/etcd.proto): the
    # betterproto stubs the registration and discovery client calls over grpclib.
    session.run(
        "python",
        "-m",
        "grpc_tools.protoc",
        "-Ijobs/_etcd",
        f"--python_betterproto_out={out}",
        "etcd.proto",
    )
    Path(out, "py.typed").write_text("")
    shutil.copyfile("service.proto", Path(out, "service.proto"))


@nox.session
def proto(session: nox.Session) -> None:
    """Regenerate gen/ from service.proto (betterproto stubs and protobuf descriptors)
    and from jobs/_etcd/etcd.proto (betterproto stubs of etcd's API)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        _generate(session, out)
        shutil.rmtree(PROTO_OUT, ignore_errors=True)
        shutil.copytree(out, PROTO_OUT)


@nox.session(name="proto-check")
def proto_check(session: nox.Session) -> None:
    """Fail if gen/ is not exactly what service.proto and jobs/_etcd/etcd.proto generate."""
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        _generate(session, out)
        comparison = filecmp.dircmp(out, PROTO_OUT)
        stale = _differences(comparison)
    if stale:
        session.error(f"gen/ is stale ({', '.join(stale)}): run `nox -s proto` and commit")


def _differences(comparison: filecmp.dircmp[str]) -> list[str]:
    found = [*comparison.left_only, *comparison.right_only, *comparison.diff_files]
    found = [name for name in found if name != "__pycache__"]
    for sub in comparison.subdirs.values():
        found.extend(_differences(sub))
    return found


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: each figure with its ratio to a baseline measured in the same run.

    `nox -s bench -- --help` lists the scenarios and their sizes. The grpcio
    baselines bind their methods from gen/service_pb2: no grpcio-tools needed.
    """
    session.install(".", "grpcio>=1.66")
    session.run("python", "-m", "bench", *session.posargs)

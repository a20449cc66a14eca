"""Automation for jobs: tests, lint, typecheck, proto and bench sessions.

``nox`` alone runs the default sessions: tests, lint and typecheck.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
CODE = ["jobs", "tests", "noxfile.py"]


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

"""The installed distribution: the generic top-level names are ours, and its console
scripts. (The public surface is tests/test_public_surface.py.)"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest


@pytest.mark.parametrize("name", ["jobs", "cli", "gen", "pki"])
def test_top_level_names_resolve_to_this_project(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    files = importlib.metadata.files("jobs") or []
    ours = {str(Path(str(f)).parts[0]) for f in files}
    assert name in ours, f"{name} is not installed by the jobs distribution"
    location = Path(module.__file__).resolve()
    assert any(location == Path(str(f.locate())).resolve() for f in files), location


def test_console_script() -> None:
    (script,) = [
        e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "jobs"
    ]
    assert script.value == "cli.main:main"


def test_the_alias_console_script_is_the_same_tool() -> None:
    # `jobs` is a shell builtin; scripts and /bin/sh call `jobsctl`.
    (alias,) = [
        e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "jobsctl"
    ]
    assert alias.value == "cli.main:main"

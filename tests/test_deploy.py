"""The deployment recipes in deploy/: the systemd unit verified by systemd itself, and
every `jobs serve` flag they use checked against the real command."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import anyio
import pytest
from harness import JOBS

from cli.serve import serve
from jobs import DEFAULT_GRACE

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "jobs.service"
RECIPES = [UNIT, DEPLOY / "jobs.nomad.hcl", DEPLOY / "jobs-daemonset.yaml"]


def unit_settings(text: str) -> dict[str, str]:
    """``Key=value`` lines of a unit file (continuations joined, comments skipped)."""
    settings = {}
    for line in text.replace("\\\n", " ").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


async def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze (systemd)")
    # The unit names the usual install path; verify it against the installed script.
    unit = tmp_path / "jobs.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/jobs", JOBS))
    result = await anyio.run_process([analyze, "verify", str(unit)], check=False)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert output == "", output  # no warning either (unknown keys, bad values)


def test_systemd_unit_lets_the_server_stop_its_jobs_with_their_grace() -> None:
    settings = unit_settings(UNIT.read_text())
    assert settings["Type"] == "notify"
    assert settings["Delegate"] == "yes"
    # SIGTERM to the server alone; the rest is killed only once it has exited.
    assert settings["KillMode"] == "mixed"
    timeout = settings["TimeoutStopSec"]
    assert timeout.endswith("s")
    assert float(timeout[:-1]) >= DEFAULT_GRACE + 10


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.name)
def test_recipes_use_only_real_serve_options(recipe: Path) -> None:
    known = {name for param in serve.params for name in param.opts}
    code = [line for line in recipe.read_text().splitlines() if not line.lstrip().startswith("#")]
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", "\n".join(code)))
    assert used, "no options found"
    assert used <= known, used - known
    assert "--health-listen" in used


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.name)
def test_recipes_are_commented(recipe: Path) -> None:
    comments = [line for line in recipe.read_text().splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= 10

"""The benchmark suite still runs (tiny sizes): its grpcio programs, its server from
jobs.testing, `--json` and `--compare`. Figures are not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

PROJECT = Path(__file__).resolve().parent.parent
TINY = ["--only", "control", "start", "cli", "--repeat", "1", "--calls", "100", "--starts", "2"]


async def bench(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    # From the project's root, as `nox -s bench` runs it: bench/ is not installed.
    return await anyio.run_process([sys.executable, "-m", "bench", *args], cwd=PROJECT, check=check)


@pytest.mark.slow
async def test_a_tiny_run_writes_every_figure_and_compares(tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    done = await bench(*TINY, "--json", str(first))
    printed = done.stdout.decode()
    run = json.loads(first.read_text())
    assert run["format"] == 1
    assert run["metadata"]["completed"] is True
    assert run["metadata"]["args"]["starts"] == 2
    assert {"date", "git_commit", "python", "kernel"} <= run["metadata"].keys()
    scenarios = [f["scenario"] for f in run["figures"]]
    assert "status calls, 50 in flight, grpcio client" in scenarios  # the grpcio programs ran
    assert "start rate, no limits (run + wait)" in scenarios
    assert "CLI start: `jobs ps` vs a bare grpclib call" in scenarios  # bench.bare_client ran
    for figure in run["figures"]:
        assert figure["scenario"] in printed
        assert figure.keys() == {"scenario", "figure", "unit", "baseline", "baseline_name", "ratio"}
        if figure["baseline"]:
            assert figure["ratio"] == pytest.approx(figure["figure"] / figure["baseline"])

    done = await bench(
        "--only", "start", "--starts", "2", "--json", str(second), "--compare", str(first)
    )
    table = done.stdout.decode().split("\nold: ", 1)[1]
    assert "start rate, no limits (run + wait)" in table
    # Figures of the old run only are listed too, with nothing new next to them.
    (line,) = [x for x in table.splitlines() if x.startswith("server CPU per status call")]
    assert line.split()[-4:] == ["us", "-", "-", "-"]

    alone = await bench("--compare", str(first), str(second))
    assert alone.stdout.decode().splitlines()[2:] == table.splitlines()[2:]


async def test_bad_files_are_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "not.json").write_text("{")
    for args in (
        ["--json", str(tmp_path / "missing" / "out.json")],
        ["--compare", str(tmp_path / "absent.json")],
        ["--compare", str(tmp_path / "not.json")],
    ):
        done = await bench(*args, check=False)
        assert done.returncode == 2
        assert done.stderr.decode().splitlines()[-1].startswith("python -m bench: error: ")

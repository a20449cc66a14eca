"""jobs.fleet and the CLI's --on path against eight real servers on 127.0.0.2-9."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from fleet_harness import Fleet, jobs, running_fleet
from pki_fixtures import Certificates

pytestmark = pytest.mark.slow

# The host's number, from the server's listen address in its command line: the
# one thing that tells a job which fleet server started it.
WHO = (
    "n=$(tr '\\0' ' ' </proc/$PPID/cmdline | sed -n 's/.*--listen=127.0.0.\\([0-9]*\\):.*/\\1/p'); "
)


@pytest.fixture(scope="module")
async def fleet(
    test_pki: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fleet]:
    async with running_fleet(test_pki, tmp_path_factory.mktemp("fleet")) as running:
        yield running


async def test_merge_keeps_every_hosts_lines_whole_and_in_order(fleet: Fleet) -> None:
    script = 'seq -f "out %g" 10000 & seq -f "err %g" 10000 >&2; wait'
    result = await jobs(fleet, "run", "--on", "fleet=test", "-f", "--", "sh", "-c", script)
    assert result.status == 0, result.stderr[-2000:]
    for data, word in ((result.stdout, "out"), (result.stderr, "err")):
        lines = data.decode().splitlines()
        seen: dict[str, list[int]] = {}
        for line in lines:
            if line.startswith("jobs: "):
                continue  # the summary
            match = re.fullmatch(rf"\[(h\d)\] {word} (\d+)", line)
            assert match, f"torn or foreign line {line!r}"
            seen.setdefault(match[1], []).append(int(match[2]))
        assert sorted(seen) == [f"h{n}" for n in range(2, 10)]
        for host, numbers in seen.items():
            assert numbers == list(range(1, 10001)), f"{host} {word}"
    summary = [line for line in result.err_lines if line.startswith("jobs: ")]
    assert len(summary) == 8
    assert all(line.endswith("exited 0") for line in summary), summary


async def test_who_am_i(fleet: Fleet) -> None:
    result = await jobs(
        fleet, "run", "--on", "h2,h7", "-f", "--", "sh", "-c", WHO + 'echo "I am $n"'
    )
    assert result.status == 0, result.stderr
    assert sorted(result.stdout.decode().splitlines()) == ["[h2] I am 2", "[h7] I am 7"]

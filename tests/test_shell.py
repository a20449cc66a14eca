"""The shell's own `jobs`: in real interactive bash, zsh and fish, on a pty, after the
README's one set-up line, our subcommands reach the tool, the builtin still answers
the rest, and Tab completion offers subcommands, options and job ids and names."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from harness import RunningServer

BIN = Path(sys.executable).parent
"""Where the installed `jobs` and `jobsctl` scripts are."""

SETUP = {
    "bash": 'eval "$(env jobs completion bash)"',
    "zsh": 'eval "$(env jobs completion zsh)"',
    "fish": "env jobs completion fish | source",
}
SHELLS = {
    "bash": ["bash", "--norc", "--noprofile", "-i"],
    "zsh": ["zsh", "-f", "-i"],
    "fish": ["fish", "--no-config", "-i"],
}
STATUS = {"bash": "$?", "zsh": "$?", "fish": "(echo $status)"}
TIMEOUT = 20


class Shell:
    """An interactive shell on a pty of its own, driven line by line."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], master: int) -> None:
        self.name = name
        self.process = process
        self.master = master
        self.seen = b""
        self._count = 0

    async def run(self, line: str) -> tuple[str, int]:
        """Type ``line``; its output (echo and prompts included) and its status."""
        self._count += 1
        match = None
        # Typed, the marker reads __done_N"" ; printed, __done_N_: the echo never matches.
        marker = f"__done_{self._count}"
        await self.type(f'{line}\necho {marker}""_{STATUS[self.name]}__\n')
        pattern = re.compile(rf"{marker}_(\d+)__".encode())
        start = len(self.seen)
        with anyio.move_on_after(TIMEOUT):
            while not (match := pattern.search(self.seen, start)):
                await self._read()
        if match is None:
            raise AssertionError(f"no end of {line!r} in: {self.seen[start:]!r}")
        output = self.seen[start : match.start()].decode(errors="replace")
        return output, int(match[1])

    async def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    async def _read(self) -> None:
        await anyio.wait_readable(self.master)
        try:
            self.seen += os.read(self.master, 65536)
        except OSError as exc:  # EIO: the shell is gone
            raise AssertionError(f"the shell ended: {self.seen[-2000:]!r}") from exc


def _controlling_tty() -> None:
    # An interactive shell with job control needs the pty as its controlling terminal.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@contextlib.asynccontextmanager
async def shell(name: str, server: RunningServer, *, on_path: bool = True) -> AsyncIterator[Shell]:
    """``name`` started interactively on a pty, with the client's settings in its
    environment and the installed scripts first on PATH (unless not ``on_path``);
    killed on the way out."""
    files = server.pki.clients["alice"]
    path = os.environ.get("PATH", "/usr/bin:/bin")
    env = {
        "PATH": f"{BIN}:{path}" if on_path else path.replace(f"{BIN}:", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "TERM": "dumb",
        "PS1": "$ ",
        "LANG": "C.UTF-8",
        "JOBS_ADDR": f"{server.host}:{server.port}",
        "JOBS_CA": str(server.pki.ca),
        "JOBS_CERT": str(files.cert),
        "JOBS_KEY": str(files.key),
    }
    process, master = _start(SHELLS[name], env)
    driven = Shell(name, process, master)
    try:
        yield driven
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the shell's session: it and its jobs
        await anyio.to_thread.run_sync(process.wait)
        os.close(master)


def _start(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """``argv`` on a new pty; the process and the pty's master end (non-blocking)."""
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=_controlling_tty
        )
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    return process, master


def _needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(name) is None, reason=f"{name} is not installed (.ci/run installs it)"
    )


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=_needs(n)) for n in ("bash", "zsh", "fish")]
)
async def test_the_shell_function_routes_and_completes(name: str, server: RunningServer) -> None:
    async with shell(name, server) as sh:
        # Before the set-up line, the builtin answers, as the issue found.
        output, status = await sh.run("jobs ps")
        assert status != 0
        output, status = await sh.run(SETUP[name])
        assert status == 0, output

        output, status = await sh.run("jobs run -f -- echo hi")
        assert status == 0, output
        assert "\nhi\r\n" in output.replace("\r\r", "\r")
        output, status = await sh.run("jobs run --name shelltest -- sleep 60")
        assert status == 0, output
        output, status = await sh.run("jobs ps")
        assert re.search(r"\n[0-9a-f]{8}\s+shelltest\s+running", output), output

        # The rest still goes to the builtin.
        output, status = await sh.run("sleep 97 &")
        output, status = await sh.run("jobs -l")
        assert status == 0, output
        assert "sleep 97" in output
        output, status = await sh.run("jobs")
        assert "sleep 97" in output

        for words, wanted in [
            (["jobs", ""], {"run", "ps", "logs", "inspect", "completion"}),
            (["jobs", "ps", "--"], {"--all", "--selector", "--json"}),
            (["jobs", "logs", "shell"], {"shelltest"}),
            (["jobs", "kill", ""], {"shelltest"}),
        ]:
            offered = await _completions(sh, words)
            assert wanted <= offered, (words, offered)

        # Real Tab presses, on the line editor: a subcommand, then a job's name.
        output, status = await sh.run("jobs insp\tshellt\t")
        assert status == 0, output
        assert '"name": "shelltest"' in output, output

        # Exit codes pass through the function.
        output, status = await sh.run("jobs run -f -- sh -c 'exit 7'")
        assert status == 7, output
        output, status = await sh.run("jobs run -f -- no-such-command")
        assert status == 127, output
        output, status = await sh.run("jobs")  # bare: still the builtin
        assert "sleep 97" in output
        await sh.run("jobs kill -g 0 shelltest")


async def _completions(sh: Shell, words: list[str]) -> set[str]:
    """What Tab would offer after ``words`` (the last one being completed)."""
    if sh.name == "bash":
        quoted = " ".join(f"'{w}'" for w in words)
        line = (
            f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
            "_jobs_completion; printf '<%s>\\n' \"${COMPREPLY[@]}\""
        )
    elif sh.name == "fish":
        line = f"complete -C '{' '.join(words)}' | string replace -r '^(\\S+).*' '<$1>'"
    else:
        # zsh's completion widgets run only inside the line editor: check that Tab is
        # bound to our function, then ask the tool as that function does.
        output, _ = await sh.run("print -r -- ${_comps[jobs]}:${_comps[jobsctl]}")
        assert "_jobs_completion:_jobs_completion" in output, output
        line = (
            f'env COMP_WORDS="{" ".join(words)}" COMP_CWORD={len(words) - 1} '
            '_JOBS_COMPLETE=zsh_complete jobs | awk \'NR % 3 == 2 { print "<" $0 ">" }\''
        )
    output, status = await sh.run(line)
    assert status == 0, output
    return set(re.findall(r"<([^<>\s]+)>", output)) - {"%s", "$1"}


def _readme_tour() -> list[str]:
    """The README's tour: the lines of its first shell block after the set-up line."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    after = readme.split("Then, with `jobs serve` running:", 1)[1]
    block = after.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


@_needs("bash")
async def test_the_readme_tour_works_pasted_into_bash(server: RunningServer) -> None:
    tour = _readme_tour()
    assert len(tour) >= 10, tour
    async with shell("bash", server) as sh:
        output, status = await sh.run(SETUP["bash"])
        assert status == 0, output
        outputs = {}
        for line in tour:
            output, status = await sh.run(line)
            assert status == 0, (line, output)
            assert "no such job" not in output, (line, output)  # the builtin answered
            assert "Traceback" not in output, (line, output)
            outputs[line.split("#")[0].strip()] = output
    assert re.search(r"\n[0-9a-f]{8}\s+web\s+running", outputs["jobs ps"]), outputs["jobs ps"]
    # The build is still printing: the last 1 to 5 of its lines so far, in a row.
    steps = [
        int(n) for n in re.findall(r"^step (\d+)\r$", outputs["jobs logs --tail 5 build"], re.M)
    ]
    assert 1 <= len(steps) <= 5, steps
    assert steps == list(range(steps[0], steps[0] + len(steps))), steps
    stamped = r"^\d{4}-\d\d-\d\dT[\d:.]+Z step 30\r$"  # followed to the end, -t's times
    assert re.search(stamped, outputs["jobs logs -f -t --since 10s build"], re.M)
    inspected = outputs["jobs inspect web build"]
    assert '"name": "web"' in inspected
    assert '"name": "build"' in inspected
    timeout = next(out for line, out in outputs.items() if "--timeout 1s" in line)
    assert "timed out after 1s" in timeout
    assert "exit 143" in timeout


@_needs("bash")
async def test_the_set_up_line_works_from_a_venv_not_on_path(server: RunningServer) -> None:
    # `eval "$(.venv/bin/jobs completion bash)"`: the function and completion call
    # that script by its path, not `jobs` on a PATH that does not have it.
    async with shell("bash", server, on_path=False) as sh:
        output, status = await sh.run("env jobs --version")
        assert status != 0, output  # not on PATH
        output, status = await sh.run(f'eval "$({BIN / "jobs"} completion bash)"')
        assert status == 0, output
        output, status = await sh.run("jobs run -f -- echo hi")
        assert status == 0, output
        assert "\nhi\r\n" in output.replace("\r\r", "\r")
        offered = await _completions(sh, ["jobs", ""])
        assert {"run", "ps", "logs"} <= offered, offered


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=_needs(n)) for n in ("bash", "zsh", "fish")]
)
async def test_the_set_up_quotes_an_awkward_path(
    name: str, server: RunningServer, tmp_path: Path
) -> None:
    # Spaces, a quote and two backslashes in a directory name: each shell's own
    # quoting (fish's single quotes take escapes, POSIX shells' do not).
    odd = tmp_path / "my tools 'q' \\\\x"
    odd.mkdir()
    (odd / "jobs").symlink_to(BIN / "jobs")
    path = str(odd / "jobs")
    if name == "fish":
        tool = path.replace("\\", "\\\\").replace("'", "\\'")
        setup = f"'{tool}' completion fish | source"
    else:
        tool = path.replace("'", "'\\''")
        setup = f"eval \"$('{tool}' completion {name})\""
    async with shell(name, server, on_path=False) as sh:
        output, status = await sh.run(setup)
        assert status == 0, output
        output, status = await sh.run("jobs run -f -- echo hi")
        assert status == 0, output
        assert "\nhi\r\n" in output.replace("\r\r", "\r")

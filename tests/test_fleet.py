"""jobs.fleet and the CLI's --on path against eight real servers on 127.0.0.2-9."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import pytest
from fleet_harness import Fleet, FleetServer, Result, free_port, jobs, running_fleet
from harness import JOBS
from pki_fixtures import Certificates

from jobs import fleet as fl

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
    # Each line is written in two pieces, so output arrives cut mid-line too.
    script = (
        "i=1; while [ $i -le 10000 ]; do printf 'out %d' $i; echo; "
        "printf 'err %d' $i >&2; echo >&2; i=$((i+1)); done"
    )
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


def summary(result: Result) -> dict[str, str]:
    """The summary lines (``jobs: HOST  words``) by host."""
    found = {}
    for line in result.err_lines:
        if match := re.fullmatch(r"jobs: (\S+)\s+(.*)", line):
            found[match[1]] = match[2]
    return found


async def test_exit_status_is_the_largest_code(fleet: Fleet) -> None:
    result = await jobs(fleet, "run", "--on", "h2,h3", "-f", "--", "sh", "-c", WHO + "exit $n")
    assert result.status == 3
    assert summary(result) == {"h2": "exited 2", "h3": "exited 3"}
    result = await jobs(fleet, "run", "--on", "h2,h3", "-f", "--", "sh", "-c", "kill -9 $$")
    assert result.status == 128 + 9
    assert summary(result) == {"h2": "killed by SIGKILL", "h3": "killed by SIGKILL"}


async def test_a_host_with_no_server_makes_it_255(fleet: Fleet) -> None:
    ghost = ("ghost", f"127.0.0.11:{free_port('127.0.0.11')}", {"fleet": "test"})
    inventory = fleet.write_inventory(ghost)
    result = await jobs(fleet, "run", "--on", "h2,ghost", "-f", "--", "true", inventory=inventory)
    assert result.status == 255
    words = summary(result)
    assert words["h2"] == "exited 0"
    assert words["ghost"].startswith("unreachable: cannot connect to 127.0.0.11:")


async def test_a_stopped_server_makes_it_255_within_the_host_timeout(
    fleet: Fleet, tmp_path: Path
) -> None:
    frozen = FleetServer("h10", "127.0.0.10", {"fleet": "test"}, tmp_path / "state")
    await frozen.start(fleet.cert, fleet.pki.ca)
    try:
        assert frozen.process is not None
        frozen.process.send_signal(signal.SIGSTOP)
        inventory = fleet.write_inventory(("h10", frozen.addr, frozen.labels))
        started = time.monotonic()
        result = await jobs(
            fleet,
            "run",
            "--on",
            "h2,h10",
            "--host-timeout",
            "2s",
            "-f",
            "--",
            "true",
            inventory=inventory,
        )
        assert time.monotonic() - started < 30
        assert result.status == 255
        assert summary(result) == {"h2": "exited 0", "h10": "unreachable: no answer within 2s"}
    finally:
        await frozen.stop()


async def test_logs_and_kill_give_up_on_a_silent_host_within_the_host_timeout(
    fleet: Fleet, tmp_path: Path
) -> None:
    frozen = FleetServer("h10", "127.0.0.10", {"fleet": "test"}, tmp_path / "state")
    await frozen.start(fleet.cert, fleet.pki.ca)
    down = FleetServer("h11", "127.0.0.11", {"fleet": "test"}, tmp_path / "state-11")
    await down.start(fleet.cert, fleet.pki.ca)
    try:
        inventory = fleet.write_inventory(
            ("h10", frozen.addr, frozen.labels), ("h11", down.addr, down.labels)
        )
        job = {}
        for verb, line in (("logs", "echo hi"), ("kill", "sleep 60")):
            started = await jobs(fleet, "run", "--on", "h2", "--", *line.split())
            job[verb] = started.stdout.decode().strip().removeprefix("h2/")
        assert (await jobs(fleet, "wait", f"h2/{job['logs']}")).status == 0
        assert frozen.process is not None
        frozen.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
        await down.stop()  # refuses them
        for command in (["logs", "-f"], ["kill"]):
            for host in ("h10", "h11"):
                result = await jobs(
                    fleet,
                    *command,
                    "--on",
                    f"h2,{host}",
                    "--host-timeout",
                    "2s",
                    job[command[0]],
                    inventory=inventory,
                    timeout=20,  # not the resume window (60 s) nor the grace (10 s)
                )
                assert result.status == 255, (command, host, result.stderr)
                assert result.err_lines[-1].startswith(f"jobs: {host}: unreachable"), (
                    result.err_lines
                )
    finally:
        await frozen.stop()


async def test_on_selects_on_the_labels_servers_report_too(fleet: Fleet, tmp_path: Path) -> None:
    # h10's inventory entry knows nothing of tier=gold, its server's own --label:
    # --on selects on what `jobs hosts` shows (the inventory's labels, and the server's).
    gold = FleetServer(
        "h10", "127.0.0.10", {"fleet": "test"}, tmp_path / "state", options=("--label=tier=gold",)
    )
    await gold.start(fleet.cert, fleet.pki.ca)
    gone = FleetServer("h11", "127.0.0.11", {"fleet": "test"}, tmp_path / "state-11")
    await gone.start(fleet.cert, fleet.pki.ca)
    try:
        inventory = fleet.write_inventory(
            ("h10", gold.addr, {"fleet": "test"}), ("h11", gone.addr, {"fleet": "test"})
        )
        await gone.stop()
        result = await jobs(
            fleet, "run", "--on", "tier=gold", "--host-timeout", "2s", "-f", "--", "echo", "hi",
            inventory=inventory,
        )  # fmt: skip
        assert result.status == 0, result.stderr
        assert result.stdout == b"[h10] hi\n"
        assert result.err_lines[0].startswith(
            "jobs: h11: not selected: its server's labels are unknown (unreachable: "
        ), result.err_lines
        built_in = await jobs(fleet, "ps", "--on", "jobs.io/cgroup,role=db", "-q")
        assert {line.split("/")[0] for line in built_in.stdout.decode().split()} <= {
            "h6", "h7", "h8", "h9"
        }  # fmt: skip
        assert built_in.status == 0, built_in.stderr
    finally:
        await gold.stop()


async def test_refused_request_is_reported_per_host(fleet: Fleet) -> None:
    result = await jobs(
        fleet, "run", "--on", "role=web", "--io-read", "/nonexistent=1M", "-f", "--", "true"
    )
    assert result.status == 255
    words = summary(result)
    assert sorted(words) == ["h2", "h3", "h4", "h5"]
    assert all(w.startswith("refused: ") and "/nonexistent" in w for w in words.values()), words


class CuttingProxy:
    """A TCP proxy that, once, cuts every connection after ``cut_after`` bytes from
    the server: a dropped connection in the middle of a stream."""

    def __init__(self, target: tuple[str, int], cut_after: int) -> None:
        self.target = target
        self.cut_after = cut_after
        self.forwarded = 0
        self.cuts = 0
        self.connections = 0
        self.port = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.2", local_port=0)
        async with listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        self.connections += 1
        async with (
            client,
            await anyio.connect_tcp(*self.target) as server,
            anyio.create_task_group() as tg,
        ):

            async def up() -> None:
                async for data in client:
                    await server.send(data)
                tg.cancel_scope.cancel()

            async def down() -> None:
                async for data in server:
                    await client.send(data)
                    self.forwarded += len(data)
                    if self.cuts == 0 and self.forwarded > self.cut_after:
                        self.cuts += 1
                        tg.cancel_scope.cancel()
                        return
                tg.cancel_scope.cancel()

            tg.start_soon(up)
            tg.start_soon(down)


async def test_a_dropped_connection_resumes_from_its_offset(fleet: Fleet) -> None:
    h2 = fleet.server("h2")
    # 20,000 lines (108,894 bytes) are delivered and read during the pause; the
    # cut comes in the middle of the rest, so the stream must resume mid-way.
    script = "seq 20000; sleep 1; seq 20001 100000"
    proxy = CuttingProxy(("127.0.0.2", h2.port), cut_after=150_000)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        inventory = fleet.write_inventory(("px", f"127.0.0.2:{proxy.port}", {"via": "proxy"}))
        result = await jobs(
            fleet, "run", "--on", "px,h3", "-f", "--", "sh", "-c", script, inventory=inventory
        )
        tg.cancel_scope.cancel()
    assert proxy.cuts == 1
    assert proxy.connections >= 2
    assert result.status == 0, result.stderr[-2000:]
    for host in ("px", "h3"):
        prefix = f"[{host}] "
        numbers = [
            int(line[len(prefix) :])
            for line in result.stdout.decode().splitlines()
            if line.startswith(prefix)
        ]
        assert numbers == list(range(1, 100001)), host  # no gap, no duplicate


async def test_log_dir_holds_each_hosts_bytes_as_its_logs_gives_them(
    fleet: Fleet, tmp_path: Path
) -> None:
    script = WHO + "printf 'out %s\\n\\001\\377' $n; printf 'err %s' $n >&2; exit $((n % 2))"
    logs = tmp_path / "logs"
    result = await jobs(
        fleet, "run", "--on", "role=web", "-f", "--log-dir", str(logs), "--", "sh", "-c", script
    )
    assert result.status == 1
    assert (logs / "hosts.succeeded").read_text() == "h2\nh4\n"
    assert (logs / "hosts.failed").read_text() == "h3\nh5\n"
    for n in range(2, 6):
        host = f"h{n}"
        document = json.loads((logs / f"{host}.json").read_text())
        assert document["host"] == host
        assert document["exit_code"] == n % 2
        assert document["job"]["state"] == "exited"
        out, err = (logs / f"{host}.out").read_bytes(), (logs / f"{host}.err").read_bytes()
        assert out == f"out {n}\n\x01".encode() + b"\xff"
        assert err == f"err {n}".encode()
        # `jobs logs HOST/ID` gives exactly these bytes
        from_logs = await jobs(fleet, "logs", f"{host}/{document['job']['id']}")
        assert from_logs.status == 0, from_logs.stderr
        assert (from_logs.stdout, from_logs.stderr) == (out, err)
    # the terminal's copy: lines whole, the partial ones marked
    assert b"[h2] \x01\xff" + fl.PARTIAL_MARK + b"\n" in result.stdout
    assert b"[h3] err 3" + fl.PARTIAL_MARK + b"\n" in result.stderr


async def test_ps_kill_and_wait_across_hosts(fleet: Fleet) -> None:
    started = await jobs(fleet, "run", "--on", "role=db", "--", "sleep", "60")
    assert started.status == 0, started.stderr
    ids = started.stdout.decode().split()
    assert sorted(i.split("/")[0] for i in ids) == ["h6", "h7", "h8", "h9"]
    listed = await jobs(fleet, "ps", "--on", "role=db", "--json")
    assert listed.status == 0, listed.stderr
    running = {
        f"{j['host']}/{j['id']}"
        for j in json.loads(listed.stdout)["jobs"]
        if j["state"] == "running"
    }
    assert set(ids) <= running
    quiet = await jobs(fleet, "ps", "--on", "role=db", "-q")
    assert set(ids) <= set(quiet.stdout.decode().split())
    h6 = next(i for i in ids if i.startswith("h6/"))
    table = await jobs(fleet, "ps", "--on", "h6")
    lines = table.stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATE", "EXIT", "AGE", "COMMAND"]  # as ps's
    assert any(line.split()[:3] == [h6[:11], "-", "running"] for line in lines[1:]), lines

    async with anyio.create_task_group() as tg:
        waited: list[Result] = []

        async def wait() -> None:
            waited.append(await jobs(fleet, "wait", ids[0]))

        tg.start_soon(wait)
        await anyio.sleep(1)
        killed = await jobs(fleet, "kill", "--grace", "1s", *ids)
    assert killed.status == 0, killed.stderr
    assert sorted(killed.stdout.decode().split()) == sorted(ids)
    assert waited[0].status == 128 + 15, waited[0].stderr
    gone = await jobs(fleet, "ps", *ids, "--json")
    assert {j["state"] for j in json.loads(gone.stdout)["jobs"]} == {"stopped"}
    missing = await jobs(fleet, "kill", "--on", "role=db", "nosuchjob")
    assert missing.status == 1
    assert "job nosuchjob not found on any selected host" in missing.stderr.decode()


async def test_fail_fast_stops_the_others(fleet: Fleet) -> None:
    script = WHO + 'if [ "$n" = 2 ]; then exit 7; fi; sleep 60'
    started = time.monotonic()
    result = await jobs(
        fleet, "run", "--on", "role=web", "-f", "--fail-fast", "--", "sh", "-c", script
    )
    assert time.monotonic() - started < 40
    words = summary(result)
    assert words["h2"] == "exited 7"
    for host in ("h3", "h4", "h5"):
        assert "stopped: a host failed" in words[host], words
    assert result.status == 7  # the failure, not the stops it caused


async def test_unknown_selection_is_one_line(fleet: Fleet) -> None:
    result = await jobs(fleet, "run", "--on", "role=nope", "--", "true")
    assert result.status == 1
    assert result.err_lines == ["jobs: no host matches 'role=nope' (of 8 known)"]
    result = await jobs(fleet, "run", "--on", "role in (web", "--", "true")
    assert result.status == 2
    assert "position 12" in result.stderr.decode()


async def test_hosts_lists_every_host_with_its_info(fleet: Fleet) -> None:
    ghost = ("ghost", f"127.0.0.11:{free_port('127.0.0.11')}", {"role": "web"})
    inventory = fleet.write_inventory(ghost)
    result = await jobs(fleet, "hosts", "--on", "role=web", "--json", inventory=inventory)
    assert result.status == 255  # ghost does not answer
    rows = {row["name"]: row for row in json.loads(result.stdout)["hosts"]}
    assert sorted(rows) == ["ghost", "h2", "h3", "h4", "h5"]
    for name in ("h2", "h3", "h4", "h5"):
        assert rows[name]["reachable"] is True
        assert rows[name]["status"] == "ok"
        assert rows[name]["version"]
        assert rows[name]["labels"]["role"] == "web"
        assert "jobs.io/cgroup" in rows[name]["labels"]
    assert rows["ghost"]["reachable"] is False
    assert rows["ghost"]["status"].startswith("unreachable: cannot connect")
    table = await jobs(fleet, "hosts", "--on", "h2,h3")
    assert table.status == 0
    lines = table.stdout.decode().splitlines()
    assert lines[0].split() == ["NAME", "ADDR", "VERSION", "JOBS", "LABELS", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == ["h2", "h3"]


async def test_logs_on_hosts_finds_the_job_where_it_is(fleet: Fleet) -> None:
    started = await jobs(fleet, "run", "--on", "role=web", "--", "sh", "-c", WHO + "echo hi $n")
    ids = dict(line.split("/") for line in started.stdout.decode().split())
    await jobs(fleet, "wait", f"h3/{ids['h3']}")
    result = await jobs(fleet, "logs", "--on", "role=web", ids["h3"])
    assert result.status == 0, result.stderr
    assert result.stdout == b"[h3] hi 3\n"


async def test_one_runs_on_the_least_loaded_host_and_moves_on_when_refused(
    fleet: Fleet, tmp_path: Path
) -> None:
    full = FleetServer(
        "h10", "127.0.0.10", {"role": "db"}, tmp_path / "state", options=("--max-running=1",)
    )
    await full.start(fleet.cert, fleet.pki.ca)
    inventory = fleet.write_inventory(("h10", full.addr, full.labels))
    sleepers: list[str] = []
    try:
        # h6-h9 run two jobs each, h10 one (its most): h10 looks least loaded, refuses.
        for hosts in ("role=db,fleet=test", "role=db,fleet=test", "h10"):
            started = await jobs(
                fleet, "run", "--on", hosts, "--", "sleep", "60", inventory=inventory
            )
            assert started.status == 0, started.stderr
            sleepers += started.stdout.decode().split()
        one = await jobs(
            fleet, "run", "--on", "role=db", "--one", "--", "true", inventory=inventory
        )
        assert one.status == 0, one.stderr
        [chosen] = one.stdout.decode().split()
        assert chosen.split("/")[0] in ("h6", "h7", "h8", "h9")
        # followed: the host's output and one summary line
        one = await jobs(
            fleet, "run", "--on", "h10,h6", "--one", "-f", "--", "echo", "hi", inventory=inventory
        )
        assert one.status == 0, one.stderr
        assert one.stdout == b"[h6] hi\n"
    finally:
        await jobs(fleet, "kill", "--grace", "0", *sleepers, inventory=inventory)
        await full.stop()


async def test_logs_on_hosts_selects_as_logs_does(fleet: Fleet) -> None:
    script = WHO + "seq 1 5; echo err $n >&2; echo last $n"
    started = await jobs(fleet, "run", "--on", "role=db", "--", "sh", "-c", script)
    ids = dict(line.split("/") for line in started.stdout.decode().split())
    for host, job_id in ids.items():
        assert (await jobs(fleet, "wait", f"{host}/{job_id}")).status == 0
    # The same name on both hosts: a bare id picks the job on each.
    tail = await jobs(fleet, "logs", "--on", "role=db", "--stdout", "--tail", "2", "-t", ids["h6"])
    assert tail.status == 0, tail.stderr
    assert tail.stderr == b""
    lines = tail.stdout.decode().splitlines()
    assert len(lines) == 2
    for line, text in zip(lines, ("5", "last 6"), strict=True):
        host, stamp, rest = line.split(" ", 2)
        assert host == "[h6]"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", stamp), stamp
        assert rest == text
    errors = await jobs(fleet, "logs", f"h7/{ids['h7']}", "--stderr")
    assert (errors.stdout, errors.stderr) == (b"", b"err 7\n")
    later = await jobs(
        fleet, "logs", "--on", "role=db", "--since", "1m", "--until", "0s", ids["h7"]
    )
    assert later.stdout == b"[h7] 1\n[h7] 2\n[h7] 3\n[h7] 4\n[h7] 5\n[h7] last 7\n"


async def test_ctrl_c_stops_following_the_fleet_not_its_jobs(fleet: Fleet) -> None:
    command = [
        JOBS,
        "run",
        "--on",
        "role=db",
        "-f",
        "--",
        "sh",
        "-c",
        "echo started; exec sleep 60",
    ]
    async with await anyio.open_process(command, env=fleet.env()) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        with anyio.fail_after(20):
            seen = b""
            while seen.count(b"started") < 4:
                seen += await process.stdout.receive()
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 130
            stderr = b""
            async for piece in process.stderr:
                stderr += piece
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("jobs: stopped following; last seen running: ")
    running = lines[0].removeprefix("jobs: stopped following; last seen running: ").split(", ")
    assert sorted(r.split("/")[0] for r in running) == ["h6", "h7", "h8", "h9"]
    for host_job in running:
        listed = await jobs(fleet, "ps", "--json", host_job)
        assert [job["state"] for job in json.loads(listed.stdout)["jobs"]] == ["running"]
        killed = await jobs(fleet, "kill", "--grace", "0", host_job)
        assert killed.status == 0, killed.stderr


async def test_ctrl_c_stops_following_and_waiting_on_hosts_with_a_line(fleet: Fleet) -> None:
    started = await jobs(fleet, "run", "--on", "h6", "--", "sh", "-c", "echo up; exec sleep 60")
    job = started.stdout.decode().strip()
    bare = job.split("/")[1]
    for command, line in (
        (["logs", "--on", "h6,h7", "-f", bare], f"jobs: stopped following job {bare}"),
        (["wait", "--on", "h6,h7", bare], f"jobs: stopped waiting for job {bare}; "),
    ):
        async with await anyio.open_process([JOBS, *command], env=fleet.env()) as process:
            assert process.stderr is not None
            with anyio.fail_after(20):
                await anyio.sleep(2)  # following / waiting by now
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 130
                stderr = b"".join([piece async for piece in process.stderr]).decode()
        assert stderr.startswith(line), stderr
        assert stderr.count("\n") == 1, stderr
    assert (await jobs(fleet, "kill", "--grace", "0", job)).status == 0

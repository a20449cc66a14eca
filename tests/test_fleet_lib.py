"""jobs.fleet on its own: the inventory, host selection, the line merger, the exit rule."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gen.jobs import v1 as pb
from jobs import fleet
from jobs.errors import InvalidSelector


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


GOOD = """\
[[host]]
name = "web1"
addr = "10.0.0.5:50051"
labels = { role = "web", zone = "a" }

[[host]]
name = "db1"
addr = "[::1]:50051"
labels = { role = "db" }
tls_name = "db1.example.com"
ca = "certs/ca.crt"
"""


def test_inventory_reads_hosts_in_order(tmp_path: Path) -> None:
    hosts = fleet.load_inventory(write(tmp_path, GOOD))
    assert [h.name for h in hosts] == ["web1", "db1"]
    assert hosts[0].labels == {"role": "web", "zone": "a"}
    assert (hosts[0].host, hosts[0].port) == ("10.0.0.5", 50051)
    assert (hosts[1].host, hosts[1].tls_name) == ("::1", "db1.example.com")
    assert hosts[1].ca == tmp_path / "certs" / "ca.crt"  # relative to the file


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[[host]]\nname = "a"\naddr = "x:1"\nlabels = { role = \n', 4, "not valid TOML"),
        ('[[host]]\nname = "a"\naddr = "x:1"\n\n[[host]]\nname = "b"\n', 5, "no 'addr'"),
        ('[[host]]\nname = "a"\naddr = "nowhere"\n', 3, "not HOST:PORT"),
        ('[[host]]\nname = "a"\naddr = "x:1"\nport = 5\n', 4, "unknown key 'port'"),
        ('[[host]]\nname = "a/b"\naddr = "x:1"\n', 2, "not a host name"),
        ('[[host]]\nname = "a"\naddr = "x:1"\nlabels = { "bad key!" = "v" }\n', 4, "label"),
        ('[[host]]\nname = "a"\naddr = "x:1"\n[[host]]\nname = "a"\naddr = "y:2"\n', 4, "already"),
        ('[[hosts]]\nname = "a"\n', 1, "unknown table"),
    ],
)
def test_a_malformed_inventory_is_one_error_naming_the_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(fleet.InvalidInventory) as caught:
        fleet.load_inventory(path)
    assert caught.value.line == line, str(caught.value)
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{path}, line {line}: ")


def test_a_missing_inventory_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(fleet.InvalidInventory, match=r"hosts\.toml: no such file"):
        fleet.load_inventory(tmp_path / "hosts.toml")


HOSTS = [
    fleet.Host("web1", "a:1", {"role": "web", "zone": "a"}),
    fleet.Host("web2", "a:2", {"role": "web", "zone": "b", "canary": ""}),
    fleet.Host("db1", "a:3", {"role": "db", "zone": "a"}),
    fleet.Host("gpu", "a:4", {"role": "ml"}),
]


@pytest.mark.parametrize(
    ("text", "chosen"),
    [
        ("role=web", ["web1", "web2"]),
        ("role!=web", ["db1", "gpu"]),
        ("zone in (a,b),role notin (db)", ["web1", "web2"]),
        ("canary", ["web2"]),
        ("!canary,role=web", ["web1"]),
        ("web2,db1", ["web2", "db1"]),  # names, in the inventory's order
        ("gpu", ["gpu"]),  # a bare word that names a host is the host
        ("", ["web1", "web2", "db1", "gpu"]),
    ],
)
def test_selection_by_labels_or_names(text: str, chosen: list[str]) -> None:
    names = [h.name for h in HOSTS]
    selection = fleet.parse_selection(text, names)
    assert [h.name for h in fleet.select(HOSTS, selection)] == chosen


def test_selection_errors() -> None:
    with pytest.raises(InvalidSelector) as caught:
        fleet.parse_selection("role in (web", ["web1"])
    assert caught.value.position == 12
    with pytest.raises(fleet.NoMatchingHost, match=r"no host matches 'role=nope' \(of 4 known\)"):
        fleet.select(HOSTS, fleet.parse_selection("role=nope"))
    with pytest.raises(fleet.NoMatchingHost, match="no hosts are known"):
        fleet.select([], fleet.parse_selection("role=web"))


def test_merger_writes_whole_lines_with_prefixes() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    merger = fleet.LineMerger(out, err)
    merger.feed("a", 1, b"one\ntw")
    merger.feed("b", 1, b"uno\n")
    merger.feed("a", 2, b"oops\n")
    merger.feed("a", 1, b"o\nthree")
    assert out.getvalue() == b"[a] one\n[b] uno\n[a] two\n"
    assert err.getvalue() == b"[a] oops\n"
    merger.end("a")  # the partial line, marked
    assert out.getvalue().endswith(b"[a] three" + fleet.PARTIAL_MARK + b"\n")


def test_merger_flushes_a_partial_line_after_its_delay() -> None:
    out = io.BytesIO()
    merger = fleet.LineMerger(out, io.BytesIO(), partial_delay=0.5)
    merger.feed("a", 1, b"Password: ")
    merger.flush_due(now=0.0)
    assert out.getvalue() == b""
    merger.flush_due(now=1e12)
    assert out.getvalue() == b"[a] Password: " + fleet.PARTIAL_MARK + b"\n"


def test_merger_groups_each_hosts_output_into_one_block() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    merger = fleet.LineMerger(out, err, group=True, prefix=False)
    merger.feed("a", 1, b"a1\n")
    merger.feed("b", 1, b"b1\n")
    merger.feed("a", 2, b"a-err\n")
    merger.feed("a", 1, b"a2\n")
    assert out.getvalue() == b""
    merger.end("b")
    merger.end("a")
    assert out.getvalue() == b"b1\na1\na2\n"
    assert err.getvalue() == b"a-err\n"


def job(state: int, code: int | None = None, sig: int | None = None) -> pb.Job:
    return pb.Job(id="x", state=pb.JobState(state), exit_code=code, signal=sig)


def test_the_exit_rule() -> None:
    ok = fleet.HostResult("a", job(pb.JobState.EXITED, 0))
    three = fleet.HostResult("b", job(pb.JobState.EXITED, 3))
    killed = fleet.HostResult("c", job(pb.JobState.OOM_KILLED, sig=9))
    gone = fleet.HostResult("d", failure=fleet.Failure.UNREACHABLE, reason="no answer")
    denied = fleet.HostResult("e", failure=fleet.Failure.DENIED, reason="permission denied")
    assert fleet.exit_status([ok, ok]) == 0
    assert fleet.exit_status([ok, three]) == 3
    assert fleet.exit_status([ok, three, killed]) == 137
    assert fleet.exit_status([ok, three, killed, gone]) == 255
    assert fleet.exit_status([ok, denied]) == 255
    assert killed.describe() == "killed by SIGKILL (OOM)"
    assert three.describe() == "exited 3"
    assert gone.describe() == "unreachable: no answer"
    assert denied.describe() == "denied: permission denied"
    timed_out = fleet.HostResult("f", job(pb.JobState.TIMED_OUT, 0))
    assert timed_out.exit_code == 124  # never a success, as on one host
    lost = fleet.HostResult("g", job(pb.JobState.LOST))
    assert lost.exit_code == 125  # its end was never seen, as `jobs wait` on one host
    assert fleet.exit_status([ok, lost]) == 125


def test_an_etcd_entry_becomes_a_host_only_when_well_formed() -> None:
    entry = {
        "Addr": "127.0.0.3:7000",
        "Metadata": {"name": "h3", "labels": {"role": "web"}, "tls_name": "h3.example"},
    }
    host = fleet.host_from_entry("jobs/h3", json.dumps(entry).encode(), "jobs/")
    assert host is not None
    assert (host.name, host.addr, dict(host.labels), host.tls_name) == (
        "h3",
        "127.0.0.3:7000",
        {"role": "web"},
        "h3.example",
    )
    bare = fleet.host_from_entry("jobs/h4", b'{"Addr": "127.0.0.4:1"}', "jobs/")
    assert bare is not None
    assert (bare.name, bare.tls_name) == ("h4", None)
    for junk in (b"not json", b'{"Addr": 5}', b'{"Addr": "nowhere"}', b"[]"):
        assert fleet.host_from_entry("jobs/x", junk, "jobs/") is None


async def test_fan_out_runs_at_most_parallel_at_once() -> None:
    import anyio

    running = peak = 0

    async def call(host: fleet.Host) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return host.name.upper()

    hosts = [fleet.Host(f"h{i}", f"a:{i + 1}") for i in range(20)]
    results = await fleet.fan_out(hosts, call, parallel=3)
    assert list(results) == [h.name for h in hosts]
    assert results["h7"] == "H7"
    assert peak == 3


def test_defaults_of_the_cli_options_agree_with_the_library() -> None:
    from cli import _fleet_options

    assert _fleet_options.DEFAULT_PARALLEL == fleet.DEFAULT_PARALLEL
    assert _fleet_options.DEFAULT_HOST_TIMEOUT == fleet.DEFAULT_HOST_TIMEOUT


def test_the_public_surface_of_jobs_fleet_is_its_all() -> None:
    public = {name for name in dir(fleet) if not name.startswith("_")}
    assert public - {"annotations"} == set(fleet.__all__)

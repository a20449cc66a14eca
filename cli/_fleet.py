"""The ``--on`` path of the client commands: many hosts through ``jobs.fleet``.

``run``, ``ps``, ``logs``, ``kill`` and ``wait`` take ``fleet_options``; when
``--on`` is given (or an id reads ``HOST/ID``) they hand over to a function
here. Output of many hosts is merged line by line with ``[host] `` prefixes;
job ids read ``HOST/ID``; the exit status follows pdsh's rule (see
``jobs.fleet.exit_status``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import asyncclick as click
from grpclib.const import Status

from gen import service_pb2 as wire
from gen.jobs import v1 as pb
from jobs import fleet
from jobs.errors import InvalidSelector

from ._client import Server
from ._fleet_options import FleetOptions
from ._render import job_document, table
from ._settings import etcd_tls, home, local_user, pki_dir

__all__ = [
    "Watch",
    "hosts_of",
    "identity_of",
    "kill_fleet",
    "known_hosts",
    "logs_fleet",
    "ps_fleet",
    "run_fleet",
    "wait_fleet",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# The server's default grace before SIGKILL (jobs.DEFAULT_GRACE), for bounding a stop.
_SERVER_GRACE = 10.0


def identity_of(server: Server) -> fleet.Identity:
    """The client's identity for hosts that name none: ``--ca/--cert/--key`` or the home's."""
    directory, user = pki_dir(), local_user()
    return fleet.Identity(
        ca=server.ca or directory / "ca.crt",
        cert=server.cert or directory / f"{user}.crt",
        key=server.key or directory / f"{user}.key",
    )


def _inventory(options: FleetOptions) -> list[fleet.Host]:
    path = options.inventory or home() / "hosts.toml"
    if options.inventory is not None or path.exists():
        return fleet.load_inventory(path)
    return []


def _merge(inventory: list[fleet.Host], discovered: list[fleet.Host]) -> list[fleet.Host]:
    """The inventory's hosts, then those discovered that it does not name (it wins)."""
    names = {host.name for host in inventory}
    return inventory + [host for host in discovered if host.name not in names]


def _selection(options: FleetOptions, names: Sequence[str]) -> fleet.Selection:
    assert options.on is not None
    try:
        return fleet.parse_selection(options.on, names)
    except InvalidSelector as exc:
        raise click.BadParameter(str(exc), param_hint="'--on'") from None


def _etcd_tls(options: FleetOptions) -> ssl.SSLContext | None:
    """TLS for ``--discover`` as ``--discover-ca/-cert/-key`` ask (None: plaintext)."""
    return etcd_tls("--discover", options.discover_ca, options.discover_cert, options.discover_key)


async def known_hosts(options: FleetOptions) -> list[fleet.Host]:
    """The inventory's hosts, then those discovered (``--discover``) that it does not name."""
    inventory = _inventory(options)
    tls = _etcd_tls(options)
    discovered = await fleet.discover(options.discover, tls=tls) if options.discover else []
    return _merge(inventory, discovered)


async def hosts_of(
    options: FleetOptions, server: Server, job_ids: Sequence[str] = ()
) -> list[fleet.Host]:
    """The hosts a command works on: those ``--on`` selects, else those its ``HOST/ID``s name."""
    hosts = await known_hosts(options)
    names = [host.name for host in hosts]
    if options.on is not None:
        selection = _selection(options, names)
        if selection.selector is not None:
            hosts = await _with_server_labels(options, server, hosts, selection)
        return fleet.select(hosts, selection)
    wanted = {job_id.partition("/")[0] for job_id in job_ids if "/" in job_id}
    for name in wanted:
        if name not in names:
            raise fleet.UnknownHost(name)
    return [host for host in hosts if host.name in wanted]


async def _with_server_labels(
    options: FleetOptions, server: Server, hosts: list[fleet.Host], selection: fleet.Selection
) -> list[fleet.Host]:
    """``hosts`` with the labels their servers report (Info) over those the inventory
    or etcd gave, as ``jobs hosts`` shows them, for the hosts whose known labels do
    not name every key the selector asks about. A host that does not answer is
    judged on what is known of it: kept when that matches (it then fails as
    unreachable), else left out with a line saying so."""
    assert selection.selector is not None
    keys = {requirement.key for requirement in selection.selector.requirements}
    unsure = [host for host in hosts if not keys <= host.labels.keys()]
    if not unsure:
        return hosts
    answers = await fleet.query_info(
        unsure, identity_of(server), parallel=options.parallel, timeout=options.host_timeout
    )
    infos = {answer.host: answer for answer in answers}
    known = []
    for host in hosts:
        answer = infos.get(host.name)
        if answer is not None and answer.info is not None:
            known.append(dataclasses.replace(host, labels={**host.labels, **answer.info.labels}))
        elif answer is None or selection.matches(host):
            known.append(host)
        else:
            why = f"{answer.failure.value}: {answer.reason}" if answer.failure else answer.reason
            _warn(f"{host.name}: not selected: its server's labels are unknown ({why})")
    return known


class Watch:
    """The selected hosts, kept current by discovery for the block's duration (the
    inventory's are fixed). No ``--on`` selects every host."""

    def __init__(self, options: FleetOptions) -> None:
        self.options = options
        self._stack = contextlib.AsyncExitStack()
        self._inventory: list[fleet.Host] = []
        self._discovery: fleet.Discovery | None = None
        self._selection: fleet.Selection | None = None

    async def __aenter__(self) -> Watch:
        self._inventory = _inventory(self.options)
        tls = _etcd_tls(self.options)
        if self.options.discover:
            self._discovery = await self._stack.enter_async_context(
                fleet.Discovery(self.options.discover, tls=tls)
            )
        if self.options.on is not None:
            names = [host.name for host in self._all()]
            self._selection = _selection(self.options, names)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def _all(self) -> list[fleet.Host]:
        discovered = self._discovery.hosts() if self._discovery else []
        return _merge(self._inventory, discovered)

    def hosts(self) -> list[fleet.Host]:
        """The hosts selected now."""
        selection = self._selection
        return [h for h in self._all() if selection is None or selection.matches(h)]

    async def changed(self) -> None:
        """Return when the hosts may have changed (never, without discovery)."""
        if self._discovery is None:
            await anyio.sleep_forever()
        else:
            await self._discovery.changed()


def _split(job_id: str, hosts: Sequence[fleet.Host]) -> list[tuple[fleet.Host, str]]:
    """``HOST/ID`` on its host; a bare ``ID`` (or name) on every host."""
    if "/" in job_id:
        name, _, bare = job_id.partition("/")
        matching = [host for host in hosts if host.name == name]
        if not matching:
            raise fleet.UnknownHost(name)
        return [(matching[0], bare)]
    return [(host, job_id) for host in hosts]


def _wire(job: pb.Job) -> wire.Job:
    """The plain protobuf job that ``_render`` reads, from betterproto's."""
    return wire.Job.FromString(bytes(job))


def _warn(text: str) -> None:
    click.echo(f"jobs: {text}", err=True)


# -- run ------------------------------------------------------------------------------


class _Outputs:
    """Each host's output to the merger, and to ``--log-dir`` files as received."""

    def __init__(self, merger: fleet.LineMerger, log_dir: Path | None) -> None:
        self.merger = merger
        self.log_dir = log_dir
        self._files: dict[tuple[str, int], Any] = {}

    def open(self, host: str) -> None:
        if self.log_dir is not None:
            for stream, suffix in ((1, "out"), (2, "err")):
                self._files[host, stream] = open(self.log_dir / f"{host}.{suffix}", "wb")  # noqa: SIM115

    def feed(self, host: str, stream: int, data: bytes) -> None:
        self.merger.feed(host, stream, data)
        if (file := self._files.get((host, stream))) is not None:
            file.write(data)

    def dropped(self, host: str, size: int) -> None:
        _warn(f"[{host}] {size} bytes of output were dropped (the job's retention cap)")

    def end(self, host: str) -> None:
        self.merger.end(host)
        for stream in (1, 2):
            if (file := self._files.pop((host, stream), None)) is not None:
                file.close()

    def close(self) -> None:
        for file in self._files.values():
            file.close()


class _Raw:
    """One host's output as it is: job stdout to our stdout, stderr to stderr."""

    def feed(self, host: str, stream: int, data: bytes) -> None:
        target = sys.stderr.buffer if stream == 2 else sys.stdout.buffer
        target.write(data)
        target.flush()

    def dropped(self, host: str, size: int) -> None:
        _warn(f"{size} bytes of output were dropped (the job's retention cap)")

    def end(self, host: str) -> None:
        pass


def _host_document(result: fleet.HostResult) -> dict[str, Any]:
    return {
        "host": result.host,
        "summary": result.describe(),
        "succeeded": result.succeeded,
        "exit_code": result.exit_code,
        "failure": result.failure.value if result.failure else None,
        "reason": result.reason or None,
        "job": job_document(_wire(result.job)) if result.job is not None else None,
    }


async def run_fleet(
    request: wire.RunRequest,
    follow: bool,
    options: FleetOptions,
    server: Server,
    *,
    one: bool,
    no_prefix: bool,
    group: bool,
    log_dir: Path | None,
    max_failures: int | None,
) -> int:
    """``jobs run --on``: the exit status (see ``jobs.fleet.exit_status``)."""
    hosts = await hosts_of(options, server)
    if log_dir is not None:
        await anyio.Path(log_dir).mkdir(parents=True, exist_ok=True)
    merger = fleet.LineMerger(
        sys.stdout.buffer, sys.stderr.buffer, prefix=not no_prefix, group=group
    )
    outputs = _Outputs(merger, log_dir) if follow else None

    def finished(result: fleet.HostResult) -> None:
        if log_dir is not None:
            path = log_dir / f"{result.host}.json"
            path.write_text(json.dumps(_host_document(result), indent=2) + "\n")

    if outputs is not None:
        for host in hosts:
            outputs.open(host.name)
    runner = fleet.FleetRun(
        pb.RunRequest().parse(request.SerializeToString()),
        identity_of(server),
        outputs,
        parallel=options.parallel,
        timeout=options.host_timeout,
        max_failures=max_failures,
        on_result=finished,
    )

    async def joining() -> None:
        """Hosts that join the selection (from discovery) during a followed run get
        the command too, as long as the run lasts."""
        async with Watch(options) as watch:
            while True:
                await watch.changed()
                for host in watch.hosts():
                    if outputs is not None and runner.add(host):
                        outputs.open(host.name)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(merger.flush_partials)
            if options.discover and follow and not one:
                tg.start_soon(joining)
            results = [await runner.run_one(hosts)] if one else await runner.run(hosts)
            tg.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        if following := runner.following:  # Ctrl-C stops following, not the jobs
            _warn(f"stopped following; last seen running: {', '.join(following)}")
        raise
    finally:
        if outputs is not None:
            outputs.close()
    width = max(len(result.host) for result in results)
    for result in results:
        if result.job is not None and not follow:
            click.echo(f"{result.host}/{result.job.id}")
        elif follow or result.failure is not None:
            label = result.host if result.host != "-" else "--one"
            _warn(f"{label.ljust(width)}  {result.describe()}")
    if log_dir is not None:
        succeeded = [r.host for r in results if r.succeeded]
        failed = [r.host for r in results if not r.succeeded and r.host != "-"]
        (log_dir / "hosts.succeeded").write_text("".join(f"{h}\n" for h in succeeded))
        (log_dir / "hosts.failed").write_text("".join(f"{h}\n" for h in failed))
    return fleet.exit_status(results)


# -- ps, kill, wait, logs -----------------------------------------------------------------


async def _status(stub: pb.JobServiceStub, job_id: str, timeout: float) -> pb.Job:
    """The job's status, within ``timeout``: a host that hangs (stopped, half-open) is
    unreachable then, before a longer call (Stop, Wait) is made of it."""
    with anyio.fail_after(timeout):
        return (await stub.status(pb.StatusRequest(job_id=job_id))).job


def _not_found(exc: fleet.HostFailed) -> bool:
    return exc.status is Status.NOT_FOUND


async def _on_hosts(
    options: FleetOptions,
    server: Server,
    pairs: Sequence[tuple[fleet.Host, str]],
    call: Callable[[fleet.Host, pb.JobServiceStub, str], Awaitable[T]],
) -> dict[tuple[str, str], T | fleet.HostFailed]:
    """``call(host, stub, id)`` for every pair, one channel per host, at most
    ``--parallel`` hosts at once: each answer, or the host's failure."""
    identity = identity_of(server)
    by_host: dict[str, list[str]] = {}
    hosts: dict[str, fleet.Host] = {}
    for host, job_id in pairs:
        by_host.setdefault(host.name, []).append(job_id)
        hosts[host.name] = host
    answers: dict[tuple[str, str], T | fleet.HostFailed] = {}

    async def visit(host: fleet.Host) -> None:
        try:
            async with fleet.open_host(host, identity) as stub:

                async def one(job_id: str) -> None:
                    try:
                        with fleet.host_errors(host, options.host_timeout):
                            answers[host.name, job_id] = await call(host, stub, job_id)
                    except fleet.HostFailed as exc:
                        answers[host.name, job_id] = exc

                async with anyio.create_task_group() as tg:
                    for job_id in by_host[host.name]:
                        tg.start_soon(one, job_id)
        except fleet.HostFailed as exc:
            for job_id in by_host[host.name]:
                answers[host.name, job_id] = exc

    await fleet.fan_out(list(hosts.values()), visit, parallel=options.parallel)
    return answers


def _report(
    answers: dict[tuple[str, str], Any], job_ids: Sequence[str], hosts: Sequence[fleet.Host]
) -> int:
    """One line per host that failed (NOT_FOUND of a bare id on some hosts is no
    failure); 255 when a host failed, 1 when an id was found nowhere, else 0."""
    status = 0
    reported: set[str] = set()
    for (host, _), answer in answers.items():
        if isinstance(answer, fleet.HostFailed) and not _not_found(answer):
            if host not in reported:
                _warn(str(answer))
                reported.add(host)
            status = 255
    for job_id in job_ids:
        found = [
            answer
            for (_, bare), answer in answers.items()
            if not isinstance(answer, fleet.HostFailed) and job_id.endswith(bare)
        ]
        failed = any(
            isinstance(answer, fleet.HostFailed) and not _not_found(answer)
            for answer in answers.values()
        )
        if not found and not failed:
            where = "on any selected host" if "/" not in job_id else ""
            _warn(f"job {job_id} not found {where}".rstrip())
            status = max(status, 1)
    return status


async def ps_fleet(
    options: FleetOptions,
    server: Server,
    job_ids: Sequence[str],
    as_json: bool,
    request: wire.ListRequest,
    *,
    quiet: bool = False,
) -> int:
    """``jobs ps --on``: every selected host's jobs (or the given ones), ids ``HOST/ID``."""
    hosts = await hosts_of(options, server, job_ids)
    if job_ids:
        pairs = [pair for job_id in job_ids for pair in _split(job_id, hosts)]
    else:
        pairs = [(host, "") for host in hosts]

    async def jobs_of(host: fleet.Host, stub: pb.JobServiceStub, job_id: str) -> list[pb.Job]:
        if not job_id:
            with anyio.fail_after(options.host_timeout):
                return list((await stub.list(listing)).jobs)
        return [await _status(stub, job_id, options.host_timeout)]

    listing = pb.ListRequest().parse(request.SerializeToString())
    answers = await _on_hosts(options, server, pairs, jobs_of)
    status = _report(answers, job_ids, hosts)
    rows = [
        (host, job)
        for (host, _), answer in answers.items()
        if not isinstance(answer, fleet.HostFailed)
        for job in answer
    ]
    if quiet:
        for host, job in rows:
            click.echo(f"{host}/{job.id}")
    elif as_json:
        documents = [{"host": host, **job_document(_wire(job))} for host, job in rows]
        click.echo(json.dumps({"jobs": documents}, indent=2))
    else:
        click.echo(table([_wire(job) for _, job in rows], [host for host, _ in rows]))
    return status


async def kill_fleet(
    options: FleetOptions,
    server: Server,
    job_ids: Sequence[str],
    sig: int | None,
    grace: float | None,
) -> int:
    """``jobs kill --on``: stop each job on its host (a bare id on every selected host,
    where it exists); print ``HOST/ID`` of each job stopped."""
    hosts = await hosts_of(options, server, job_ids)
    pairs = [pair for job_id in dict.fromkeys(job_ids) for pair in _split(job_id, hosts)]
    # The stop returns once the job is gone: allow its grace (the server's default
    # is 10 s) on top of the time to answer.
    bound = 2 * options.host_timeout + (grace if grace is not None else _SERVER_GRACE)

    async def stop(host: fleet.Host, stub: pb.JobServiceStub, job_id: str) -> pb.Job:
        # Status first: a job the host does not have is NOT_FOUND then, not after the grace.
        await _status(stub, job_id, options.host_timeout)
        with anyio.fail_after(bound):
            request = pb.StopRequest(job_id=job_id, grace_seconds=grace, signal=sig)
            return (await stub.stop(request)).job

    answers = await _on_hosts(options, server, pairs, stop)
    for (host, _), answer in answers.items():
        if not isinstance(answer, fleet.HostFailed):
            click.echo(f"{host}/{answer.id}")
    return _report(answers, job_ids, hosts)


async def wait_fleet(options: FleetOptions, server: Server, job_id: str) -> int:
    """``jobs wait --on``: wait for the job on every host that has it; one summary
    line per host, and the fleet's exit status."""
    hosts = await hosts_of(options, server, [job_id])
    pairs = _split(job_id, hosts)

    async def wait(host: fleet.Host, stub: pb.JobServiceStub, bare: str) -> pb.Job:
        await _status(stub, bare, options.host_timeout)  # not waited on forever
        return (await stub.wait(pb.WaitRequest(job_id=bare))).job

    try:
        answers = await _on_hosts(options, server, pairs, wait)
    except anyio.get_cancelled_exc_class():  # Ctrl-C stops waiting, not the jobs
        _warn(f"stopped waiting for job {job_id}; it is still running where it ran")
        raise
    status = _report(answers, [job_id], hosts)
    results = [
        fleet.HostResult(host, answer)
        for (host, _), answer in answers.items()
        if not isinstance(answer, fleet.HostFailed)
    ]
    width = max((len(result.host) for result in results), default=0)
    for result in results:
        _warn(f"{result.host.ljust(width)}  {result.describe()}")
    return max(status, fleet.exit_status(results))


async def logs_fleet(
    options: FleetOptions,
    server: Server,
    request: wire.LogsRequest,
    *,
    timestamps: bool = False,
    no_prefix: bool = False,
) -> int:
    """``jobs logs --on``: the part of the job's output that ``request`` selects
    (tail, time window, streams, from its offset) on every host that has it, merged
    line by line with ``[host] `` prefixes; each host's stream resumes after a drop."""
    job_id = request.job_id
    hosts = await hosts_of(options, server, [job_id])
    pairs = _split(job_id, hosts)
    merger = fleet.LineMerger(sys.stdout.buffer, sys.stderr.buffer, prefix=not no_prefix)
    # One HOST/ID reads as plain `jobs logs` does: bytes untouched, nothing to merge.
    outputs: fleet.Output = _Outputs(merger, None) if options.on is not None else _Raw()

    async def stream(host: fleet.Host, stub: pb.JobServiceStub, bare: str) -> bool:
        try:
            await fleet.stream_output(
                host,
                stub,
                bare,
                outputs,
                follow=request.follow,
                offset=request.offset,
                selection=request,
                timestamps=timestamps,
                timeout=options.host_timeout,
            )
        finally:
            merger.end(host.name)
        return True

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(merger.flush_partials)
            answers = await _on_hosts(options, server, pairs, stream)
            tg.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        if request.follow:  # Ctrl-C stops following, as `jobs logs -f` says
            _warn(f"stopped following job {job_id}")
        raise
    return _report(answers, [job_id], hosts)

"""``jobs serve``: run the server until SIGTERM or SIGINT, then stop every job gracefully;
reload its certificates and CRL on SIGHUP."""

from __future__ import annotations

import dataclasses
import functools
import logging
import signal
import ssl
from pathlib import Path

import anyio
import asyncclick as click

import pki as authority
from jobs import (
    DEFAULT_GRACE,
    DEFAULT_HISTORY,
    DEFAULT_MAX_RUNNING,
    DEFAULT_MAX_STREAMS,
    DEFAULT_OUTPUT_CAP,
    InvalidArgument,
    JobsError,
    ManagerSettings,
    UserPolicy,
)
from jobs._etcd import parse_url
from jobs.selectors import check_labels
from jobs.server import (
    BUILTIN_PREFIX,
    DEFAULT_AUDIT_MAX_BYTES,
    DEFAULT_CALL_BURST,
    DEFAULT_CALL_RATE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REGISTER_TTL,
    Registration,
    ServerConfig,
    check_health_address,
    check_name,
    host_name,
)
from jobs.server import serve as run_server

from ._errors import CliError
from ._params import DURATION, SIZE, UINT32_MAX, count
from ._settings import (
    DEFAULT_ADDR,
    etcd_tls,
    etcd_tls_options,
    home,
    local_user,
    parse_address,
    pki_dir,
    role_oid_option,
)

__all__ = ["serve"]

log = logging.getLogger("jobs.serve")

_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServerConfig)}
"""The connection limits' defaults, as ``ServerConfig`` states them."""


def _labels(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep:
            raise click.BadParameter(f"{value!r} is not K=V", ctx, param)
        labels[key] = text
    try:
        check_labels(labels)
    except InvalidArgument as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if reserved := sorted(k for k in labels if k.startswith(BUILTIN_PREFIX)):
        raise click.BadParameter(f"{reserved[0]}: {BUILTIN_PREFIX} labels are built in", ctx, param)
    return labels


def _name(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    name = value or host_name()
    try:
        check_name(name)
    except InvalidArgument as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    return name


@click.command()
@click.option(
    "--listen",
    envvar="JOBS_LISTEN",
    default=DEFAULT_ADDR,
    show_default=True,
    help="HOST:PORT to listen on. [env: JOBS_LISTEN]",
)
@click.option(
    "--ca",
    envvar="JOBS_SERVER_CA",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA that client certificates must chain to. [env: JOBS_SERVER_CA]",
)
@click.option(
    "--cert",
    envvar="JOBS_SERVER_CERT",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Server certificate. [env: JOBS_SERVER_CERT]",
)
@click.option(
    "--key",
    envvar="JOBS_SERVER_KEY",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Server private key. [env: JOBS_SERVER_KEY]",
)
@click.option(
    "--state-dir",
    envvar="JOBS_STATE_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Job records and output. [env: JOBS_STATE_DIR; default: $JOBS_HOME/state]",
)
@role_oid_option
@click.option(
    "--max-running",
    type=count(1, UINT32_MAX),
    default=DEFAULT_MAX_RUNNING,
    show_default=True,
    help="Running jobs per account.",
)
@click.option(
    "--max-streams",
    type=count(1, UINT32_MAX),
    default=DEFAULT_MAX_STREAMS,
    show_default=True,
    help="Open log streams per account.",
)
@click.option(
    "--output-cap",
    type=SIZE,
    default=DEFAULT_OUTPUT_CAP,
    show_default="1G",
    help="Output kept per job; the oldest is dropped first.",
)
@click.option(
    "--history",
    type=click.IntRange(min=0),
    default=DEFAULT_HISTORY,
    show_default=True,
    help="Ended jobs kept, with their output; the oldest go first.",
)
@click.option("--history-age", type=DURATION, help="Forget ended jobs older than this, e.g. 7d.")
@click.option(
    "--grace",
    type=DURATION,
    default=DEFAULT_GRACE,
    show_default="10s",
    help="Default time between SIGTERM and SIGKILL.",
)
@click.option(
    "--name",
    envvar="JOBS_SERVER_NAME",
    callback=_name,
    help="This server's name in Info, etcd and fleet job ids. [env: JOBS_SERVER_NAME; "
    "default: the host name]",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="K=V",
    envvar="JOBS_SERVER_LABELS",
    callback=_labels,
    help="A label of this server (repeatable; Kubernetes syntax; jobs.io/ ones are built in). "
    "[env: JOBS_SERVER_LABELS, space-separated]",
)
@click.option(
    "--advertise",
    metavar="HOST:PORT",
    envvar="JOBS_ADVERTISE",
    help="The address clients reach this server at, as registered in etcd. "
    "[env: JOBS_ADVERTISE; default: the listening address, or NAME:PORT for 0.0.0.0]",
)
@click.option(
    "--register",
    metavar="etcd://HOST:PORT[/PREFIX]",
    envvar="JOBS_REGISTER",
    help="Keep this server registered in etcd as PREFIX/NAME (prefix: jobs/). [env: JOBS_REGISTER]",
)
@etcd_tls_options("--register", "JOBS_REGISTER")
@click.option(
    "--register-ttl",
    type=click.IntRange(min=2),
    default=DEFAULT_REGISTER_TTL,
    show_default=True,
    help="Seconds of the registration's lease: how long a crashed server stays listed.",
)
@click.option(
    "--health-listen",
    metavar="HOST:PORT",
    envvar="JOBS_HEALTH_LISTEN",
    help="Also answer plaintext grpc.health.v1 (only) here, for orchestrator probes; "
    "a loopback address. [env: JOBS_HEALTH_LISTEN]",
)
@click.option(
    "--health-any-address",
    is_flag=True,
    help="Allow --health-listen on a non-loopback address (anyone reaching it sees the status).",
)
# -- connection limits (issue 14) --
@click.option(
    "--handshake-timeout",
    type=DURATION,
    default=_CONFIG_DEFAULTS["handshake_timeout"],
    show_default="10s",
    help="Time a new connection has to complete its TLS handshake.",
)
@click.option(
    "--keepalive-time",
    type=DURATION,
    default=_CONFIG_DEFAULTS["keepalive_time"],
    show_default="30s",
    help="Silence after which the server pings a client.",
)
@click.option(
    "--keepalive-timeout",
    type=DURATION,
    default=_CONFIG_DEFAULTS["keepalive_timeout"],
    show_default="20s",
    help="Time a pinged client has to answer before its connection is closed.",
)
@click.option(
    "--max-request",
    type=SIZE,
    default=_CONFIG_DEFAULTS["max_request"],
    show_default="64K",
    help="Largest request message of every call but Run.",
)
@click.option(
    "--max-run-request",
    type=SIZE,
    default=_CONFIG_DEFAULTS["max_run_request"],
    show_default="1M",
    help="Largest Run request message.",
)
# -- least privilege and production security (issue 13) --
@click.option(
    "--default-user",
    envvar="JOBS_DEFAULT_USER",
    help="User (name or uid) of jobs that name none. [env: JOBS_DEFAULT_USER; "
    "default: nobody for a root server, else the server's own user]",
)
@click.option(
    "--allow-user",
    "allow_users",
    multiple=True,
    help="Another user (name or uid) jobs may ask to run as; repeatable. "
    "Root only when named here.",
)
@click.option(
    "--crl",
    envvar="JOBS_SERVER_CRL",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM CRL of the CA (`jobs pki revoke`); revoked client certificates are refused. "
    "[env: JOBS_SERVER_CRL; default without --ca/--cert/--key: $JOBS_HOME/pki/crl.pem]",
)
@click.option(
    "--audit-log",
    envvar="JOBS_AUDIT_LOG",
    default="",
    help="Audit log file, or - for standard output. "
    "[env: JOBS_AUDIT_LOG; default: audit.log in the state directory]",
)
@click.option(
    "--audit-log-size",
    type=SIZE,
    default=DEFAULT_AUDIT_MAX_BYTES,
    show_default="100M",
    help="Rotate the audit log at this size (5 older files kept).",
)
@click.option(
    "--call-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_CALL_RATE,
    show_default=True,
    help="Calls per second per account (token bucket); past it RESOURCE_EXHAUSTED.",
)
@click.option(
    "--call-burst",
    type=click.IntRange(min=1),
    default=DEFAULT_CALL_BURST,
    show_default=True,
    help="Calls an idle account may make at once.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    help="Open connections per client IP address; more are closed at once.",
)
async def serve(
    listen: str,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    state_dir: Path | None,
    role_oid: str,
    max_running: int,
    max_streams: int,
    output_cap: int,
    history: int,
    history_age: float | None,
    grace: float,
    name: str,
    labels: dict[str, str],
    advertise: str | None,
    register: str | None,
    register_ca: Path | None,
    register_cert: Path | None,
    register_key: Path | None,
    register_ttl: int,
    health_listen: str | None,
    health_any_address: bool,
    handshake_timeout: float,
    keepalive_time: float,
    keepalive_timeout: float,
    max_request: int,
    max_run_request: int,
    default_user: str | None,
    allow_users: tuple[str, ...],
    crl: Path | None,
    audit_log: str,
    audit_log_size: int,
    call_rate: float,
    call_burst: int,
    max_connections: int,
) -> None:
    """Serve the jobs API over mutual TLS.

    With no --ca/--cert/--key, a development PKI is created in $JOBS_HOME/pki on
    first start, with a client identity (role full) for the local user, which the
    other commands find without flags.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host, port = parse_address(listen, "--listen")
    try:
        users = UserPolicy(default_user, allow_users)
        users.check()
    except JobsError as exc:
        raise CliError(str(exc)) from None
    health = parse_address(health_listen, "--health-listen") if health_listen is not None else None
    if health is not None and not health_any_address:
        try:
            check_health_address(health[0])
        except InvalidArgument:
            raise CliError(
                f"--health-listen {health_listen}: the plaintext health port listens on a "
                "loopback address only (--health-any-address to expose it)"
            ) from None
    if advertise is not None:
        parse_address(advertise, "--advertise")
    registration = _registration(register, register_ca, register_cert, register_key, register_ttl)
    for option, value in (
        ("--handshake-timeout", handshake_timeout),
        ("--keepalive-time", keepalive_time),
        ("--keepalive-timeout", keepalive_timeout),
        ("--max-request", max_request),
        ("--max-run-request", max_run_request),
    ):
        if value <= 0:
            raise click.BadParameter("must be more than 0", param_hint=option)
    if ca is None and cert is None and key is None:
        directory = pki_dir()
        created = authority.ensure_development_pki(directory, local_user())
        if created:
            log.info("created a development PKI in %s: %s", directory, ", ".join(created))
        ca, cert, key = directory / "ca.crt", directory / "server.crt", directory / "server.key"
        if crl is None and (directory / authority.CRL).exists():
            crl = directory / authority.CRL
    elif ca is None or cert is None or key is None:
        raise click.UsageError("give --ca, --cert and --key together (or none of them)")
    config = ServerConfig(
        cert=cert,
        key=key,
        ca=ca,
        state_dir=state_dir or home() / "state",
        host=host,
        port=port,
        role_oid=role_oid,
        manager=ManagerSettings(
            max_running=max_running,
            max_streams=max_streams,
            output_cap=output_cap,
            history=history,
            history_age=history_age,
            grace=grace,
            users=users,
        ),
        name=name,
        labels=labels,
        advertise=advertise,
        register=registration,
        health_listen=health,
        health_force=health_any_address,
        handshake_timeout=handshake_timeout,
        keepalive_time=keepalive_time,
        keepalive_timeout=keepalive_timeout,
        max_request=max_request,
        max_run_request=max_run_request,
        crl=crl,
        audit_log=audit_log,
        audit_log_max_bytes=audit_log_size,
        call_rate=call_rate,
        call_burst=call_burst,
        max_connections=max_connections,
    )
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with anyio.create_task_group() as tg:
            try:
                serving = await tg.start(functools.partial(run_server, config))
            except ssl.SSLError as exc:  # the files are there, but not a usable identity
                raise CliError(
                    f"cannot load the server's TLS files ({config.cert}, {config.key}, "
                    f"{config.ca}): {exc.reason or exc}: check --cert, --key and --ca"
                ) from None
            except OSError as exc:
                if exc.filename is not None:  # a certificate, key, CA or CRL file
                    raise CliError(
                        f"cannot read {exc.filename}: {exc.strerror or exc} "
                        "(check --ca, --cert, --key and --crl)"
                    ) from None
                raise CliError(f"cannot serve on {listen}: {exc.strerror or exc}") from None
            except JobsError as exc:  # a bad name, the state directory taken, a user unknown
                raise CliError(str(exc)) from None
            except BaseExceptionGroup as group:  # raised inside the job manager's block
                (error, *_) = group.exceptions
                if isinstance(error, JobsError):  # the audit log cannot be opened
                    raise CliError(str(error)) from None
                raise
            async for received in signals:
                if received == signal.SIGHUP:
                    log.info("SIGHUP: reloading the CA, certificate, key and CRL")
                    serving.reload()
                    continue
                log.info("%s: stopping every job, then exiting", signal.Signals(received).name)
                tg.cancel_scope.cancel()
                break


def _registration(
    url: str | None, ca: Path | None, cert: Path | None, key: Path | None, ttl: int
) -> Registration | None:
    if url is None:
        if ca or cert or key:
            raise click.UsageError("--register-ca/--register-cert/--register-key need --register")
        return None
    try:
        where = parse_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--register") from None
    return Registration(where, etcd_tls("--register", ca, cert, key), ttl)

"""Who a job runs as: the server's user policy, and the credentials a child takes on.

As Nomad's exec driver: a server running as root runs jobs as ``nobody`` unless
told otherwise (``default``); any other user must be allowed by name or uid
(``allowed``), root included. A server not running as root cannot switch users:
it runs every job as itself and refuses any other user.
"""

from __future__ import annotations

import ctypes
import functools
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidArgument, UnknownUser, UserNotAllowed, echo

__all__ = ["DEFAULT_USER", "RunAs", "UserPolicy"]

DEFAULT_USER = "nobody"
"""Whom a root server runs jobs as when the request names nobody."""


@dataclass(frozen=True, slots=True)
class RunAs:
    """The credentials of a job's processes: user, primary and supplementary groups, home."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @classmethod
    def lookup(cls, user: str) -> RunAs:
        """The user named ``user`` (or whose uid it is, in decimal); ``UnknownUser`` if none."""
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except (KeyError, OverflowError, ValueError):
            raise UnknownUser(user) from None
        try:
            groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        except OSError:
            groups = (entry.pw_gid,)
        home = entry.pw_dir if entry.pw_dir and os.path.isabs(entry.pw_dir) else "/"
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, home)

    @classmethod
    def current(cls) -> RunAs:
        """The server's own user, as the kernel sees it (even without a passwd entry)."""
        uid = os.geteuid()
        try:
            return cls.lookup(str(uid))
        except UnknownUser:
            return cls(str(uid), uid, os.getegid(), tuple(os.getgroups()), "/")

    def preexec(self) -> Callable[[], None] | None:
        """What the child runs last before exec to become this user (None: it already
        is, and has nothing to give up).

        Groups first, then the gid, then the uid: once the uid is dropped the
        child may no longer change the others. Setting all three uids (real,
        effective, saved) leaves the job no way back and no capability. A server
        not running as root keeps its user, but the capabilities it was given to
        pass on (systemd's ``AmbientCapabilities=``, to bind a port) are not passed
        on to jobs: emptying the inheritable set empties the ambient one with it.
        """
        if os.geteuid() != 0:
            return _drop_inheritable_capabilities if _inheritable_capabilities() else None
        name, uid, gid, groups = self.name, self.uid, self.gid, list(self.groups)

        def become() -> None:
            try:
                # The output pipes (fds 1 and 2 by now) become the user's too, so the
                # job can open them again by name: /dev/stdout, /proc/self/fd/1.
                os.fchown(1, uid, gid)
                os.fchown(2, uid, gid)
                os.setgroups(groups)
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
            except OSError as exc:  # say which step: the parent only learns its errno
                raise OSError(exc.errno, f"taking on user {name}") from None

        return become


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CAPABILITY_VERSION_3 = 0x20080522  # two _CapData: capabilities 0-31, then 32-63
# Looked up now, in the parent: a child between fork and exec must not dlopen/dlsym.
_libc = ctypes.CDLL(None, use_errno=True)
_capget, _capset = _libc.capget, _libc.capset


@functools.cache
def _inheritable_capabilities() -> int:
    """This process's inheritable and ambient capability sets, from /proc, or'ed
    (0 when it cannot tell)."""
    found = 0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(("CapInh:", "CapAmb:")):
                    found |= int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return found


def _drop_inheritable_capabilities() -> None:
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "reading the server's capabilities")
    for half in data:
        half.inheritable = 0
    if _capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "dropping the server's inheritable capabilities")


@dataclass(frozen=True, slots=True)
class UserPolicy:
    """Which users jobs may run as, and the default one.

    ``default`` is the user of a job that names none (``nobody`` for a root
    server); ``allowed`` lists the other users (names or uids) a job may ask
    for. Root is never allowed unless named explicitly. A server not running as
    root accepts only itself: naming another user there is ``InvalidArgument``.
    """

    default: str | None = None
    allowed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if os.geteuid() == 0:
            return
        me = RunAs.current()
        for user in filter(None, (self.default, *self.allowed)):
            if user not in (me.name, str(me.uid)):
                raise InvalidArgument(
                    f"a server not running as root runs jobs as itself ({me.name}), "
                    f"not as {echo(user)}"
                )

    def check(self) -> None:
        """Raise ``UnknownUser`` if the default or an allowed user does not exist."""
        self.resolve(None)
        for user in self.allowed:
            RunAs.lookup(user)

    def resolve(self, requested: str | None) -> RunAs:
        """The credentials for a job asking for ``requested`` (None or empty: the default).

        Raises ``UnknownUser`` for a user the host does not have, ``UserNotAllowed``
        for one the policy does not allow.
        """
        if os.geteuid() != 0:
            me = RunAs.current()
            if requested and requested not in (me.name, str(me.uid)):
                # Existing or not, this server cannot become anyone else.
                raise UserNotAllowed(requested)
            return me
        default = RunAs.lookup(self.default or DEFAULT_USER)
        if not requested:
            return default
        run_as = RunAs.lookup(requested)
        if run_as.uid == default.uid:
            return run_as
        for user in self.allowed:
            try:
                if RunAs.lookup(user).uid == run_as.uid:
                    return run_as
            except UnknownUser:
                continue  # removed since the server started: it allows nobody
        raise UserNotAllowed(requested)

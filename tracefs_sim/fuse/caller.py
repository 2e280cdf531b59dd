"""Who is calling: the host process behind a FUSE request, read from /proc.

A record carries the comm, pid and CPU of the task that made the syscall, and a
blocked read must end when its reader is signalled; FUSE hands us only the caller's
pid (and uid), so the rest comes from ``/proc/<pid>``.  Everything here is read-only
and cached just long enough to stay cheap on every request (see
../shared/notes/fuse.md for the measurements).
"""

from __future__ import annotations

import os
import time

from ..hostprocs import read_proc, status_fields

COMM_TTL = 0.2  # seconds a pid's comm is trusted (exec changes it)
CPU_TTL = 0.02  # seconds a pid's last CPU is trusted (one request after another)
CACHE_MAX = 4096  # pids remembered before the stale ones are dropped


def possible_cpus(path: str = "/sys/devices/system/cpu/possible") -> int:
    """Number of possible CPUs of the host (what sysconf(_SC_NPROCESSORS_CONF) and
    trace-cmd use): the simulated kernel's default CPU count."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    highest = -1
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            highest = max(highest, int(hi or lo))
        except ValueError:
            continue
    return highest + 1 if highest >= 0 else (os.cpu_count() or 1)


def signal_pending(pid: int) -> bool | None:
    """True if ``pid`` has a pending unblocked signal, None if it is gone (or a zombie).

    ``/proc/<pid>/status``: (SigPnd | ShdPnd) & ~SigBlk (notes/tools.md §4).
    """
    fields = status_fields(pid, ("State", "SigPnd", "ShdPnd", "SigBlk"))
    if fields is None:
        return None
    if fields.get("State", "").startswith(("Z", "X")):
        return None
    try:
        pending = int(fields.get("SigPnd", "0"), 16) | int(fields.get("ShdPnd", "0"), 16)
        blocked = int(fields.get("SigBlk", "0"), 16)
    except ValueError:
        return False
    return bool(pending & ~blocked)


def fd_nonblock(pid: int, ino: int, name: str) -> bool:
    """True if ``pid`` holds an fd on our inode ``ino`` with O_NONBLOCK set *now*.

    pyfuse3's read() gets no file flags, so an ``fcntl(F_SETFL, O_NONBLOCK)`` after open
    (perf ftrace's trace_pipe fd) is invisible; without this its final drain read, made
    after tracing_on=0 on an empty buffer, blocks for ever.  Asked only before blocking:
    ``/proc/<pid>/fdinfo/N`` (flags, ino) of fds whose link names ``name``.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return False
    for fd in fds:
        text = read_proc(f"/proc/{pid}/fdinfo/{fd}")
        if text is None or f"\nino:\t{ino}\n" not in text + "\n":
            continue
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").endswith("/" + name):
                continue
            flags = int(text.split("flags:", 1)[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue
        if flags & os.O_NONBLOCK:
            return True
    return False


class _Caller:
    """What is cached of one caller pid: its comm and the CPU it last ran on, each with
    the monotonic time until which it is trusted."""

    __slots__ = ("comm", "comm_until", "cpu", "cpu_until")

    def __init__(self) -> None:
        self.comm = "<...>"
        self.comm_until = 0.0
        self.cpu = 0
        self.cpu_until = 0.0


class TaskInfo:
    """comm and CPU of a caller pid, cheap enough to ask on every request: one dict
    lookup and one sched_getaffinity(2) while the cached values are fresh."""

    def __init__(self, nr_cpus: int) -> None:
        self.nr_cpus = max(1, nr_cpus)
        self._callers: dict[int, _Caller] = {}

    def _caller(self, pid: int, now: float) -> _Caller:
        c = self._callers.get(pid)
        if c is None:
            if len(self._callers) > CACHE_MAX:  # drop the stale entries now and then
                self._callers = {p: v for p, v in self._callers.items()
                                 if now < v.comm_until or now < v.cpu_until}
            c = self._callers[pid] = _Caller()
        return c

    def comm(self, pid: int) -> str:
        now = time.monotonic()
        c = self._caller(pid, now)
        if now >= c.comm_until:
            text = read_proc(f"/proc/{pid}/comm")
            if text is not None:
                c.comm = text.rstrip("\n")
            c.comm_until = now + COMM_TTL
        return c.comm

    def refresh(self, pid: int) -> None:
        """Forget what is cached of ``pid`` (a syscall it makes right after an exec
        must see the new comm)."""
        self._callers.pop(pid, None)

    def lookup(self, pid: int) -> tuple[str, int]:
        """(comm, cpu) of ``pid``: a pinned task runs on its one allowed CPU, any other
        on the CPU it last ran on (field 39 of /proc/<pid>/stat), modulo nr_cpus.  The
        affinity is asked every time: ``taskset -c 1 echo x > trace_marker`` opens the
        file before taskset pins the process and writes right after."""
        if pid <= 0:
            return "<idle>", 0
        try:
            allowed = os.sched_getaffinity(pid)
        except OSError:
            allowed = set()
        now = time.monotonic()
        c = self._callers.get(pid)
        if c is None:
            c = self._caller(pid, now)
        if len(allowed) == 1:
            comm = c.comm if now < c.comm_until else self.comm(pid)
            return comm, next(iter(allowed)) % self.nr_cpus
        if now < c.cpu_until:
            return c.comm, c.cpu
        text = read_proc(f"/proc/{pid}/stat")
        if text is None:
            return self.comm(pid), 0
        head, _, tail = text.rpartition(")")
        c.comm = head.partition("(")[2]
        c.comm_until = now + COMM_TTL
        try:
            c.cpu = int(tail.split()[36]) % self.nr_cpus  # field 39; tail starts at field 3
        except (IndexError, ValueError):
            c.cpu = 0
        c.cpu_until = now + CPU_TTL
        return c.comm, c.cpu

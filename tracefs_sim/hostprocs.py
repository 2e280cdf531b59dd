"""Host processes seen from the mount: which were forked, which exited.

The simulated kernel only sees the requests that reach the mount, but on the machine
it stands for every fork, exec and exit is a tracepoint (``sched_process_fork`` feeds
triggers, ``set_event_pid`` follows forks with ``event-fork``).  So before each request
the adapter asks this watcher what happened on the host since the previous one:

* the pids allocated since (``/proc/sys/kernel/ns_last_pid`` moved) are forks: a live
  one with its parent, comm, exe and CPU from ``/proc``; one already gone (a subshell,
  a command that failed to exec) is attributed to the parent of the next live newcomer,
  or to the requester;
* processes reported before that are gone (or zombies) exited.

The kernel turns them into its clone / exec / exit paths (``Workload.host_spawn`` and
``host_exit``).  Between requests the adapter's idle ticker calls ``poll()``: the same
fork/exit scan, plus — while a scheduler tracepoint is enabled — the watched processes'
voluntary context switches and comm: each switch the host scheduler made is a sleep and
a wakeup of the simulated task (``Workload.host_run``: sched_waking, sched_wakeup,
sched_switch in and out), a comm change is its exec or its rename.  So ``ping -c 5``
run next to the mount wakes up in the trace the way it does on the machine.
Deterministic kernels (``--seed``) are left alone: host activity is not reproducible.
The server's own threads are not reported.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from typing import Any

LAST_PID = "/proc/sys/kernel/ns_last_pid"
PID_MAX = "/proc/sys/kernel/pid_max"
MAX_NEW = 128          # newcomers reported per scan (the most recent ones)
MAX_KNOWN = 256        # processes watched for their exit
EXIT_CHECK = 0.02      # seconds between scans of the watched processes
FORK_CHECK = 0.005     # seconds between fork scans while the same processes make requests


def read_proc(path: str) -> str | None:
    """A /proc file's text (None: gone).  os.open/os.read, not open(): no buffered file
    object for a read that runs on a request's path."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def status_fields(pid: int, keys: tuple[str, ...]) -> dict[str, str] | None:
    """The fields ``keys`` of /proc/PID/status (None: gone)."""
    text = read_proc(f"/proc/{pid}/status")
    if text is None:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            out[key] = value.strip()
            if len(out) == len(keys):
                break
    return out


def proc_status(pid: int) -> dict[str, str] | None:
    """Name, State, Tgid, PPid, voluntary_ctxt_switches of ``pid`` (None: gone)."""
    return status_fields(pid, ("Name", "State", "Tgid", "PPid", "voluntary_ctxt_switches"))


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat from the third (state) on, so field N is at index
    N - 3 (None: gone).  Split after the comm's closing parenthesis: a comm may hold
    spaces and parentheses itself."""
    text = read_proc(f"/proc/{pid}/stat")
    return None if text is None else text.rpartition(")")[2].split()


def image_of(pid: int) -> tuple[str, str] | None:
    """What an exec replaces and a rename keeps: the program (``/proc/PID/exe``) and the
    start of its stack (field 28 of ``/proc/PID/stat``, placed anew by each exec).  None
    when the host does not show them (a process we may not ptrace-read: proc hides
    both), or the process is gone."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    fields = stat_fields(pid)
    if fields is None or len(fields) < 26 or fields[25] == "0":    # field 28, startstack
        return None
    return exe, fields[25]


def settled(pid: int) -> tuple[str | None, tuple[str, str] | None]:
    """``pid``'s comm and image, both of one program: the image, the comm, then the image
    again; an exec in between (perf's child leaves its go-pipe wait at any time) makes
    the two images differ and the three are read again.  comm None: gone."""
    for _ in range(3):
        image = image_of(pid)
        text = read_proc(f"/proc/{pid}/comm")
        comm = text.rstrip("\n") if text is not None else None
        if image_of(pid) == image:
            break
    return comm, image


def exec_filename(comm: str, image: tuple[str, str] | None) -> str | None:
    """The path an exec of ``comm`` was given, as far as the host tells: its program
    when that is named ``comm``; else ``comm`` in the program's directory (``sh`` runs
    /usr/bin/dash, ``python3`` python3.11: the path named the link, and the comm is the
    path's last part).  None when the host shows no image."""
    if image is None:
        return None
    exe = image[0]
    head, _, base = exe.rpartition("/")
    return exe if base[:15] == comm else f"{head}/{comm}"


def _alive(st: dict[str, str] | None) -> bool:
    return st is not None and not st.get("State", "").startswith(("Z", "X"))


class HostProcs:
    """Watches host pids between requests (one per adapter)."""

    def __init__(self) -> None:
        last = read_proc(LAST_PID)
        self.enabled = last is not None and last.strip().isdigit()
        self.last = int(last) if self.enabled and last is not None else 0
        pid_max = read_proc(PID_MAX)
        self.pid_max = int(pid_max) if pid_max and pid_max.strip().isdigit() else 1 << 22
        self.me = os.getpid()
        self.known: dict[int, str] = {}     # pid -> comm, reported and watched for exit
        self.images: dict[int, tuple[str, str] | None] = {}   # pid -> image_of() when seen
        self.vcs: dict[int, int] = {}       # pid -> voluntary context switches seen
        self.cwd: dict[int, str] = {}       # pid -> working directory at its last request
        self.next_check = 0.0
        self.next_fork_check = 0.0
        self._last_fd: int | None = None
        self.last_req = 0                   # the last process that made a request
        try:
            self.mnt_ns: str | None = os.readlink("/proc/self/ns/mnt")
        except OSError:
            self.mnt_ns = None
        # a pidfd per watched process: it turns readable when the process exits, so one
        # poll(2) finds the exits among all of them (no /proc read per process)
        self.pidfds: dict[int, int] = {}
        self.exits = select.poll()

    def _last_pid(self) -> int | None:
        """ns_last_pid through one descriptor kept open (a pread per request, not an
        open/read/close: this runs before every request)."""
        try:
            if self._last_fd is None:
                self._last_fd = os.open(LAST_PID, os.O_RDONLY | os.O_CLOEXEC)
            text = os.pread(self._last_fd, 32, 0)
        except OSError:
            return None
        return int(text) if text.strip().isdigit() else None

    def _new_pids(self) -> list[int]:
        last = self._last_pid()
        if last is None:
            return []
        if last == self.last:
            return []
        prev, self.last = self.last, last
        if last > prev:
            pids = range(max(prev + 1, last - MAX_NEW + 1), last + 1)
            return list(pids)
        # the pid space wrapped (pids restart above 300)
        pids = [*range(prev + 1, self.pid_max), *range(301, last + 1)]
        return pids[-MAX_NEW:]

    def _comm(self, pid: int, st: dict[str, str] | None = None) -> str:
        if pid in self.known:
            return self.known[pid]
        st = st or proc_status(pid)
        return st.get("Name", "<...>") if st else "<...>"

    def sync(self, kernel: Any, pid: int, comm: str, cpu_of: Callable[[int], int]) -> None:
        """Report to ``kernel`` what happened on the host before ``pid``'s request
        (``comm``: its comm now).  ``cpu_of(pid)`` is the CPU of a host task."""
        if not self.enabled or kernel.deterministic:
            return
        wl = kernel.workload
        now = time.monotonic()
        # before every request while a fork would leave a mark (a kernel_clone probe, sched
        # events, event-fork); otherwise on a newcomer's request (it follows its fork) or
        # every FORK_CHECK: reading ns_last_pid is the dearest part of an idle request
        if (pid not in self.known or now >= self.next_fork_check
                or wl.hostprocs.forks_observed()):
            self.next_fork_check = now + FORK_CHECK
            new = self._new_pids()
            if new:
                self._spawned(wl, new, pid, cpu_of)
        if now >= self.next_check:
            self.next_check = now + EXIT_CHECK
            for p in self._exited():
                if p != pid:
                    self._forget(p)
                    wl.hostprocs.host_exit(p)
        if pid > 0:
            self.last_req = pid
        if pid > 0 and pid not in self.known:
            self._watch(pid, comm if comm not in ("", "<...>") else self._comm(pid))
        elif pid > 0 and comm not in ("", "<...>") and comm != self.known[pid]:
            self._comm_changed(wl, pid)   # since its last request

    def chdir(self, kernel: Any, pid: int) -> None:
        """Once ``pid`` runs in the kernel: a working directory changed since its last
        request was a chdir(2) (read from /proc/PID/cwd while a chdir event is traced)."""
        wl = kernel.workload
        if pid <= 0 or kernel.deterministic:
            return
        # quiet(): no tracepoint is live at all, so neither is a chdir one (the O(1)
        # check first: this runs on every request of an unseeded mount)
        if wl.quiet() or not wl.hostprocs.chdir_traced():
            self.cwd.pop(pid, None)
            return
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return
        seen = self.cwd.get(pid)
        if len(self.cwd) >= MAX_KNOWN and pid not in self.cwd:
            del self.cwd[next(iter(self.cwd))]
        self.cwd[pid] = cwd
        if seen is not None and seen != cwd:
            wl.hostprocs.host_chdir(cwd)

    def _same_mnt_ns(self, pid: int) -> bool:
        """Is ``pid`` in the server's mount namespace?  Concurrent simulators in private
        namespaces (scripts/ftracetest shards, tracefs-sim run) each see their own
        processes; a plain mount shares the host's namespace and sees them all."""
        if self.mnt_ns is None:
            return True
        try:
            return os.readlink(f"/proc/{pid}/ns/mnt") == self.mnt_ns
        except OSError:
            return True

    def _comm_changed(self, wl: Any, pid: int) -> None:
        """Watched ``pid`` was seen with another comm.  A new image (another program, or
        a stack placed anew) says it exec'd; the same one that it renamed itself
        (prctl(PR_SET_NAME): perf's child calls itself perf-exec until it execs the
        command).  When the host shows no image a new comm is taken for an exec."""
        comm, new = settled(pid)
        if comm is None or comm == self.known[pid]:
            return                  # gone (its exit comes next), or back to what it was
        self.known[pid] = comm
        old = self.images.get(pid)
        self.images[pid] = new
        if old is not None and old == new:
            wl.hostprocs.host_rename(pid, comm)
        else:
            wl.hostprocs.host_exec(pid, comm, exec_filename(comm, new))

    def _watch(self, pid: int, comm: str, image: tuple[str, str] | None = None) -> None:
        if len(self.known) >= MAX_KNOWN:
            self._forget(next(iter(self.known)))
        self.known[pid] = comm
        self.images[pid] = image if image is not None else image_of(pid)
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            return                  # a thread, or gone already: _exited() reads its status
        self.pidfds[pid] = fd
        self.exits.register(fd, select.POLLIN)

    def _forget(self, pid: int) -> None:
        self.known.pop(pid, None)
        self.images.pop(pid, None)
        self.vcs.pop(pid, None)
        fd = self.pidfds.pop(pid, None)
        if fd is not None:
            self.exits.unregister(fd)
            os.close(fd)

    def _exited(self) -> list[int]:
        """Watched processes that exited (zombies included) since the last call."""
        ready = {fd for fd, _ in self.exits.poll(0)}
        return [p for p in self.known
                if (self.pidfds[p] in ready if p in self.pidfds else not _alive(proc_status(p)))]

    def close(self) -> None:
        for p in list(self.pidfds):
            self._forget(p)
        if self._last_fd is not None:
            os.close(self._last_fd)
            self._last_fd = None

    def poll(self, kernel: Any, cpu_of: Callable[[int], int]) -> None:
        """Between requests (idle ticker): forks; the watched processes' execs and exits
        while anything is attached; their sleeps and wakeups while the scheduler's events
        are traced."""
        if not self.enabled or kernel.deterministic:
            return
        wl = kernel.workload
        new = self._new_pids()
        if new:
            self._spawned(wl, new, 0, cpu_of)
        # execs and exits matter whenever something is attached (a hist trigger on
        # sched_process_exec/exit, a kprobe); sleeps and wakeups only to sched events
        sched = wl.hostprocs.sched_traced()
        if not sched:
            self.vcs.clear()
            if not (wl.hostprocs.forks_observed()):
                return
        for p in list(self.known):
            st = proc_status(p)
            if not _alive(st):
                self._forget(p)
                wl.hostprocs.host_exit(p)
                continue
            assert st is not None
            name = st.get("Name", "")
            if name and name != self.known[p]:
                self._comm_changed(wl, p)
            vcs = st.get("voluntary_ctxt_switches", "")
            if not sched or not vcs.isdigit():
                continue
            n, seen = int(vcs), self.vcs.get(p)
            self.vcs[p] = n
            if seen is not None and n > seen:
                wl.hostprocs.host_run(p, cpu_of(p), n - seen)

    def _spawned(self, wl: Any, pids: list[int], req: int, cpu_of: Callable[[int], int]) -> None:
        sts = [(p, proc_status(p)) for p in pids]
        req_new = req in pids
        req_st = dict(sts).get(req) if req_new else None
        # a process gone before anyone saw it (a subshell) was forked by the requester, or
        # between requests (the idle poll) by the last process that made one
        fallback = int(req_st.get("PPid", "0")) if req_new and req_st else (req or self.last_req)
        for i, (p, st) in enumerate(sts):
            alive = _alive(st)
            if st is not None and int(st.get("Tgid", p)) == self.me:
                continue                            # the server's own threads
            if alive and not self._same_mnt_ns(p):
                continue                            # another namespace's "machine"
            if alive and st is not None:
                tgid = int(st.get("Tgid", p))
                thread = tgid != p
                parent = tgid if thread else int(st.get("PPid", "0"))
                if parent <= 0:
                    continue
                now_comm, image = settled(p)
                comm = now_comm or st.get("Name", "<...>")
                pcomm = self._comm(parent)
                # the child's image against its parent's: a fork shares it, an exec
                # (even of the parent's program) does not, a prctl rename keeps it
                pimage = image_of(parent) or self.images.get(parent)
                execd = None if image is None or pimage is None or thread else image != pimage
                exe = None if thread else exec_filename(comm, image)
                wl.hostprocs.host_spawn(parent, pcomm, p, comm, cpu_of(p), exe, alive=True,
                                        thread=thread, execd=execd)
                self._watch(p, comm, image)
            else:
                # gone already: forked by whoever forked the next live newcomer
                parent = fallback
                for _q, qst in sts[i + 1:]:
                    if _alive(qst) and qst is not None:
                        parent = int(qst.get("PPid", "0")) or fallback
                        break
                if parent <= 0:
                    continue
                pcomm = self._comm(parent)
                wl.hostprocs.host_spawn(parent, pcomm, p, pcomm, cpu_of(parent), None, alive=False)

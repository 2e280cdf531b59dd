"""Host tasks traced under ``tracefs-sim run``: what the ptrace tracer observed becomes the
paths and events Linux 6.12 runs and records for that activity (docs/host-tracing.md).

The host layer (host/feed.py) decodes the tracer's records and calls one method per
record, in time order, with plain values: ``attached``, ``sys_enter``, ``sys_exit``,
``interrupted``, ``new_task``, ``exec``, ``comm``, ``signal``, ``exit``, ``gone``.  Every
``ts`` is boot-clock ns.  This module does no I/O: what only the host can tell (the file
behind an fd the model did not see opened, the parent of CMD, a script's interpreter) it
asks ``self.host`` (a ``Host``; the feed installs one reading /proc).

Time.  A record is processed "at" its time: the background machine catches up to it, the
boot clock is pinned to it, and readings never go backwards on a CPU.  A syscall's entry
fires its entry tracepoints at once; its path (``Syscalls.run``: x64_sys_call →
__x64_sys_NAME → its body) runs when its outcome is known or needed — at its exit, with
the real return value (a failing openat takes the error path), or earlier when the task
makes a request to the mount, a waker needs it asleep, another traced task is seen on its
CPU, or it has been pending past ``HORIZON_NS`` in a syscall that can sleep.  Until then
the CPU's timeline is held: ticks that fall in the syscall wait (``hold``), so what
happened on that CPU can still be placed right after the entry.

Sleeps.  A syscall slept when the tracer's schedstat readings say the task was switched
back in during it and spent ``SLEPT_NS`` neither running nor runnable, or (no readings)
when it can sleep and took longer than ``BLOCK_NS``: right after its path the task is
switched out (S, or D for an uninterruptible wait) and the CPU idles; it is woken by the
waker the model saw (a child's exit for wait4, a writer for a pipe read, a traced task's
kill, a vfork child's exec or exit), else by its body's waker (the hrtimer interrupt of a
nanosleep at its expiry), else in the CPU's idle context just before its exit, then
switched back in.  Two traced tasks seen on one CPU: the earlier one was switched out
(asleep if its pending syscall can sleep, else preempted: R+).  A task seen on another CPU
migrated (sched_migrate_task).

Interruptions.  An -ERESTART* return is held back: a signal delivery that follows shows
it (the kernel's sys_exit shows the code, then signal_deliver); a restart that follows
without a visible signal (a signal ignored, the tracer's own PTRACE_INTERRUPT) continues
the syscall, whose final return is shown as its own.  ``interrupted`` (the switch to
syscalls mode stopped a task in a syscall entered before syscalls were reported) does
the same for an entry that was never seen, or shows the exit alone.

The mount's side.  A request from a traced task runs inside the syscall that made it:
``owns(tid)`` says whether ``tid`` is traced, ``in_syscall(tid)`` whether it is inside a
reported syscall; ``request_enter(tid, cpu)`` makes the task current on ``cpu`` inside
that syscall (its path run, the task woken and switched in if it slept) and returns its
``SyscallCtx`` (None when the task is not in a reported syscall: nothing must be invented
for it), ``request_exit(tid)`` ends the request (the task stays in its syscall until the
tracer reports the exit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..sched import TASK_COMM_LEN, Task
from ..syscall_table import Syscall, SyscallTable
from .defs import (
    HARDIRQ,
    NEED_RESCHED,
    STATE_D,
    STATE_PREEMPTED,
    STATE_S,
    STATE_STOPPED,
    T_ASLEEP,
    T_DEAD,
    T_NEW,
    T_PREEMPTED,
    T_RUNNING,
    T_STOPPED,
    T_WOKEN,
    WAKEUP,
    D,
)
from .files import FdTable, FileAttrs, OpenFile, Pipe, file_from_link, track
from .mm.fault import FAULT_NS
from .signal import SigState
from .syscalls import SyscallCtx, arg_int

if TYPE_CHECKING:
    from . import Workload
    from .mm import MmStruct

BLOCK_NS = 200_000         # without schedstat readings: a sleepable syscall this long slept
HORIZON_NS = 2_000_000     # pending this long, a syscall that can sleep is taken as asleep
SLEPT_NS = 30_000          # schedstat: this long neither running nor runnable (the two ptrace
# stops' share, some microseconds each, included) and switched back in: it slept
SLEEP_STEP = 2_000         # ns between a syscall's entry and the switch away
SWITCH_STEP = 1_500        # ns between a wakeup and the woken task switched in
DISPLACED_NS = 20_000      # in a syscall that can sleep this long when another task is seen
# on its CPU, a task had blocked in it; sooner, it was preempted
WAKE_LEAD = 6_000          # a wakeup comes this long before the exit stop that shows it
EXIT_STEP = 800            # a syscall that did not sleep returns this soon after its entry
SWITCHES_UNKNOWN = 0xFFFFFFFF

# syscalls that can put the task to sleep interruptibly (or in D: SLEEP_D), when their
# body does not say otherwise
MAY_SLEEP = frozenset((
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev",
    "pwritev2", "nanosleep", "clock_nanosleep", "wait4", "waitid", "poll", "ppoll", "select",
    "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2", "futex", "futex_waitv", "pause",
    "rt_sigsuspend", "rt_sigtimedwait", "accept", "accept4", "connect", "recvfrom", "recvmsg",
    "recvmmsg", "sendto", "sendmsg", "sendmmsg", "msgrcv", "msgsnd", "semop", "semtimedop",
    "flock", "fcntl", "sync", "syncfs", "fsync", "fdatasync", "msync", "sendfile", "splice",
    "tee", "copy_file_range", "io_getevents", "io_uring_enter", "mq_timedreceive",
    "mq_timedsend", "restart_syscall", "ioctl",
))
SLEEP_D = frozenset(("sync", "syncfs", "fsync", "fdatasync", "msync", "vfork"))
# syscalls whose ptrace event stops (fork, exec) make schedstat look like a sleep
EVENT_STOPS = frozenset(("clone", "clone3", "fork", "vfork", "execve", "execveat"))
FORKS = frozenset(("clone", "clone3", "fork", "vfork"))
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = -512, -513, -514, -516
ERESTART = frozenset((ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK))
NR_RESTART_SYSCALL = 219
PR_SET_NAME = 15
# what an interrupted sleep returns to the exit path when a fatal signal ends it
INTERRUPTED_RET = {"nanosleep": ERESTART_RESTARTBLOCK, "clock_nanosleep": ERESTART_RESTARTBLOCK,
                   "poll": ERESTARTNOHAND, "ppoll": ERESTARTNOHAND, "select": ERESTARTNOHAND,
                   "pselect6": ERESTARTNOHAND, "pause": ERESTARTNOHAND,
                   "rt_sigsuspend": ERESTARTNOHAND, "epoll_wait": -4, "epoll_pwait": -4,
                   "epoll_pwait2": -4, "rt_sigtimedwait": -4}
FD_ARGS = frozenset(("fd", "fildes", "oldfd", "ufd", "epfd", "fd_in", "in_fd"))



class Host(Protocol):
    """What only the host can tell about a traced process (the feed reads /proc)."""

    def fd_link(self, tgid: int, fd: int) -> tuple[str, str] | None:
        """readlink(/proc/TGID/fd/FD) and, for a socket, its protocol's name; None:
        no such fd."""
        ...

    def parent(self, pid: int) -> tuple[int, str] | None:
        """The parent process of ``pid``: (pid, comm)."""
        ...

    def comm(self, pid: int) -> str | None:
        """The comm of host task ``pid`` (an untraced target of a traced kill); None: no
        such task."""
        ...

    def interp(self, tgid: int, filename: str) -> str | None:
        """The interpreter of the script ``filename`` exec'd by ``tgid`` (its #! line):
        bprm->interp; None for a binary."""
        ...

    def ignored_signals(self, pid: int) -> int:
        """The mask of signals ``pid`` ignores (SigIgn of /proc/PID/status)."""
        ...

    def memcg(self, pid: int) -> str:
        """The memory cgroup of ``pid`` (/proc/PID/cgroup): what mmap_lock events print."""
        ...

    def maps(self, tgid: int) -> str | None:
        """/proc/TGID/maps now (a process whose exec the model did not see)."""
        ...

    def lstat(self, tgid: int, path: str) -> FileAttrs | None:
        """What lstat(2) of absolute ``path`` says in ``tgid``'s view of the files (the
        VM's 9P server answers from the same files); None: nothing there."""
        ...

    def cwd(self, tgid: int) -> str | None:
        """The working directory of ``tgid`` (readlink /proc/TGID/cwd)."""
        ...


class NoHost:
    """A host that tells nothing (tests, and a kernel without a tracer)."""

    def fd_link(self, tgid: int, fd: int) -> tuple[str, str] | None:
        return None

    def parent(self, pid: int) -> tuple[int, str] | None:
        return None

    def comm(self, pid: int) -> str | None:
        return None

    def interp(self, tgid: int, filename: str) -> str | None:
        return None

    def ignored_signals(self, pid: int) -> int:
        return 0

    def memcg(self, pid: int) -> str:
        return ""

    def maps(self, tgid: int) -> str | None:
        return None

    def lstat(self, tgid: int, path: str) -> FileAttrs | None:
        return None

    def cwd(self, tgid: int) -> str | None:
        return None


@dataclass(slots=True, eq=False)
class Pending:
    """A syscall a traced task is in."""

    ctx: SyscallCtx
    cpu: int
    restart: bool = False       # an -ERESTART* return held back: a restart may continue it
    restart_ret: int = 0
    restart_ts: int = 0
    slept: bool = False         # it was switched out asleep in it
    restarted: bool = False     # its restart (restart_syscall, or the same number) goes on
    renaming: bool = False      # a prctl(PR_SET_NAME) returned: held until the new comm shows
    served: int = 0             # requests of it the mount served: the host task's waits for
    served_ns: int = 0          # their answers (this long in all) are no sleeps of the syscall
    request_t0: int = 0         # when the request being served reached the mount

    @property
    def t0(self) -> int:
        return self.ctx.t0


@dataclass(slots=True, eq=False)
class Proc:
    """A traced thread group: what its threads share."""

    tgid: int
    parent: Proc | None                 # a traced parent
    files: FdTable
    sig: SigState
    threads: dict[int, Thread] = field(default_factory=dict)
    children: list[Proc] = field(default_factory=list)
    outside_parent: tuple[int, str] | None = None   # an untraced parent: (pid, comm)
    exit_signal: int = 17               # SIGCHLD unless clone said otherwise
    zombie: bool = False                # dead, waiting for its parent's wait
    released: bool = False              # reaped (release_task)
    vfork_parent: Thread | None = None  # the thread waiting in vfork until this one execs or exits
    pgid: int = 0
    names: int = 0                      # its names_cache buffer (getname's struct filename)
    leader: Task | None = None          # the task of its leader (reaped last)

    def live(self) -> list[Thread]:
        return [t for t in self.threads.values() if t.state != T_DEAD]


@dataclass(slots=True, eq=False)
class Thread:
    """One traced host thread."""

    task: Task
    proc: Proc
    cpu: int = -1                       # the CPU it last ran on
    state: str = T_RUNNING
    pending: Pending | None = None
    first_return: Syscall | None = None  # the fork-family syscall whose return (0) it owes
    returned: Syscall | None = None     # that return, once shown (before its exit stop came)
    restart_nr: int = -1                # an unseen syscall interrupted by the mode switch
    blocked: int = 0                    # its blocked signals
    exit_status: int = 0                # its wait status once it exited
    woken_at: int = 0                   # when it was last woken
    sleep_state: int = 0                # the state it sleeps in (S, D) when asleep
    mm: MmStruct | None = None          # its mm (shared with CLONE_VM; None: not known, or exited)


class TracedTasks:
    """The traced host threads of one kernel and their observed activity."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.table = SyscallTable.load()
        self.threads: dict[int, Thread] = {}
        self.procs: dict[int, Proc] = {}
        self.hold: list[int | None] = [None] * wl.k.nr_cpus   # CPU timeline held at this ns
        self.host: Host = NoHost()
        self.pipes: dict[int, Pipe] = {}     # pipe inode (from /proc) -> the pipe
        self.now = 0                          # the time of the record being processed
        self._pending: dict[int, Thread] = {}  # tid -> a thread in a syscall
        self._fd_arg: dict[int, int] = {}
        for sc in self.table.by_nr.values():
            for i, a in enumerate(sc.args):
                if a.name in FD_ARGS and not a.type.endswith("*"):
                    self._fd_arg[sc.nr] = i
                    break

    # ------------------------------------------------------------------ queries
    def owns(self, tid: int) -> bool:
        """Is ``tid`` a traced thread (its syscalls come from the tracer)?"""
        t = self.threads.get(tid)
        return t is not None and t.state != T_DEAD

    def in_syscall(self, tid: int) -> bool:
        """Is traced ``tid`` inside a syscall the tracer reported?"""
        t = self.threads.get(tid)
        return t is not None and t.pending is not None and t.pending.ctx.entered

    def thread(self, tid: int) -> Thread | None:
        return self.threads.get(tid)

    def sleepers(self) -> list[Thread]:
        """The threads inside a syscall (a waker looks for the one it wakes here)."""
        return list(self._pending.values())

    # ------------------------------------------------------------------ the mount's side
    # A FUSE request of a traced task runs inside the syscall that made it (the tracer
    # writes a stop's records before it resumes the task, and the adapter drains them
    # before it serves the request).  The time a served syscall takes is the FUSE round
    # trip, not a sleep: it sleeps only where the request blocks (a trace_pipe read
    # waiting for data).

    def request_enter(self, tid: int, cpu: int) -> SyscallCtx | None:
        """A request of traced ``tid`` reached the mount: it runs inside the pending
        syscall, with the task current on the syscall's CPU (its path run, woken if it
        slept), and the syscall's context is returned.  Without a pending syscall
        (lifecycle mode reports none) the task is made current on ``cpu`` all the same,
        so what the request records (a trace_marker write) is the task's; None then."""
        t = self.threads.get(tid)
        if t is None or t.state == T_DEAD:
            return None
        wl = self.wl
        k = wl.k
        self.now = k.boot_clock.peek()
        wl.catch_up_to(self.now)
        p = t.pending
        ctx = p.ctx if p is not None and p.ctx.entered else None
        if p is not None and ctx is not None:
            p.served += 1
            p.request_t0 = self.now
            if not ctx.ran:
                self.run_path(t)
            cpu = p.cpu
            self.hold[cpu] = None          # the task runs there: the CPU is not idle
        self._run(t, cpu)
        task = t.task
        if k.trace.cmdline_ref:
            k.trace.record_task(task)
        for hook in k.syscall_hooks:
            hook(task)
        return ctx

    def request_block(self, tid: int) -> None:
        """The request waits (``WOULD_BLOCK``): the task sleeps in its syscall now and its
        CPU idles."""
        t = self.threads.get(tid)
        if t is None or t.cpu < 0 or t.state == T_DEAD:
            return
        self.now = self.wl.k.boot_clock.peek()
        self.wl.catch_up_to(self.now)
        self.sleep(t, STATE_S)

    def request_wake(self, tid: int) -> None:
        """What the request waited for came (its wait queue was woken): the task is woken
        from the CPU that woke it; the next ``request_enter`` switches it in."""
        t = self.threads.get(tid)
        if t is None or t.state != T_ASLEEP:
            return
        self.now = self.wl.k.boot_clock.peek()
        self.wl.catch_up_to(self.now)
        self.wake(t, self._idle_cpu(t.cpu))

    def request_exit(self, tid: int) -> None:
        """The request is answered: the task stays in its syscall (its exit is the
        tracer's ``SYS_EXIT``)."""
        t = self.threads.get(tid)
        if t is not None and t.pending is not None:
            p = t.pending
            p.cpu = t.cpu
            if p.served:
                p.served_ns += self.wl.k.boot_clock.peek() - p.request_t0
        sched = self.wl.k.sched
        sched.irq_flags = 0
        sched.preempt_count = 0

    # ------------------------------------------------------------------ time
    def _at(self, ts: int) -> None:
        """Process what follows at boot time ``ts``: syscalls pending past the horizon
        sleep, the background catches up (held CPUs excepted), the clock reads ``ts``."""
        self.now = ts
        for t in list(self._pending.values()) if self._pending else ():
            p = t.pending
            if (p is not None and t.state == T_RUNNING and ts - p.t0 > HORIZON_NS
                    and not p.restart and not p.served):
                # (a served one runs the file's code, or sleeps where its request waits)
                if p.ctx.sc.name in MAY_SLEEP:
                    self.sleep(t)
                elif not p.ctx.ran and p.ctx.entered:
                    self.run_path(t)             # a long syscall that cannot sleep: it runs
                    self.hold[p.cpu] = None
        self.wl.catch_up_to(ts)
        self.wl.k.boot_clock.pin(ts)

    def _pin(self, ns: int) -> None:
        self.wl.k.boot_clock.pin(ns)

    def _pin_on(self, cpu: int, ns: int) -> None:
        """Readings on ``cpu`` go on from ``ns``, or right after its last one."""
        clock = self.wl.k.boot_clock
        clock.pin(max(ns, clock.floor(cpu) + 1))

    def waiting(self, t: Thread) -> bool:
        """Is ``t`` in a syscall that waits interruptibly (a signal ends the wait)?"""
        p = t.pending
        return p is not None and p.ctx.sc.name in MAY_SLEEP and p.ctx.sc.name not in SLEEP_D

    def _back(self, saved: int | None) -> None:
        """Readings go on from where they were before an excursion to an earlier time on
        some CPU (``saved``: the clock's ``pinned`` then)."""
        clock = self.wl.k.boot_clock
        clock.pin(None if saved is None else saved + clock.PIN_STEP)

    def _done(self) -> None:
        self.wl.k.boot_clock.unpin()

    # ------------------------------------------------------------------ tasks
    def _new_proc(self, tgid: int, parent: Proc | None) -> Proc:
        p = Proc(tgid, parent, FdTable(), SigState())
        self.procs[tgid] = p
        return p

    def _new_thread(self, tid: int, proc: Proc, comm: str) -> Thread:
        """A new task object for ``tid`` (a pid the host reuses gets a fresh one)."""
        sched = self.wl.k.sched
        task = Task(tid, proc.tgid, (comm or "<...>")[:TASK_COMM_LEN - 1])
        sched.tasks[tid] = task
        t = Thread(task, proc)
        proc.threads[tid] = t
        if tid == proc.tgid:
            proc.leader = task
        self.threads[tid] = t
        self.wl.sched.traced.add(tid)
        return t

    def _known(self, tid: int, tgid: int) -> Thread:
        """The thread ``tid`` (one the tracer reports without having announced it — the
        model started late — is made up from what the record says)."""
        t = self.threads.get(tid)
        if t is not None:
            return t
        proc = self.procs.get(tgid) or self._new_proc(tgid, None)
        old = self.wl.k.sched.tasks.get(tid)
        return self._new_thread(tid, proc, old.comm if old is not None else "")

    def attached(self, ts: int, cpu: int, tid: int, tgid: int, comm: str) -> None:
        """CMD itself, seized before its execve: it exists, nothing ran yet.  From now on
        the machine's user space is the traced programs': the simulated shell session
        stops."""
        self.wl.shell.enabled = False
        proc = self._new_proc(tgid, None)
        proc.outside_parent = self.host.parent(tid)
        proc.pgid = tgid
        proc.sig.ignore_mask(self.host.ignored_signals(tid))
        self.wl.mm.memcg = self.host.memcg(tid)
        t = self._new_thread(tid, proc, comm)
        t.cpu = cpu % self.wl.k.nr_cpus

    def resync(self) -> None:
        """Syscalls are reported again after a time they were not (the tracer's lifecycle
        mode): the fd tables may have changed unseen, so they are forgotten (the host
        names each fd again when it is used), and so may the working directories."""
        for proc in self.procs.values():
            proc.files.fds.clear()
            proc.files.cloexec.clear()
        self.wl.mm.resync()
        self.wl.fs.v9fs.syscalls_unseen({tgid: self.host.cwd(tgid) for tgid in self.procs})

    def file(self, proc: Proc, fd: int) -> OpenFile | None:
        """The open file ``fd`` names in ``proc``: the model's, else the host's (an fd
        opened before the model saw it)."""
        f = proc.files.get(fd)
        if f is not None or fd < 0:
            return f
        got = self.host.fd_link(proc.tgid, fd)
        if got is None:
            return None
        f = file_from_link(*got, self.pipes)
        proc.files.install(fd, f)
        return f

    # ------------------------------------------------------------------ scheduling
    def _curr_thread(self, cpu: int) -> Thread | None:
        cur = self.wl.k.sched.curr[cpu]
        t = self.threads.get(cur.pid) if cur.pid else None
        return t if t is not None and t.task is cur else None

    def _run(self, t: Thread, cpu: int) -> None:
        """``t`` runs on ``cpu`` now: switched in if something else ran there (woken first
        when it slept, migrated when it last ran elsewhere)."""
        wl = self.wl
        k = wl.k
        c = cpu % k.nr_cpus
        sched = k.sched
        task = t.task
        if t.cpu >= 0 and t.cpu != c and sched.curr[t.cpu] is task:
            # it left its CPU between two observations: preempted there
            self._switch(t.cpu, sched.idle[t.cpu], STATE_PREEMPTED)
            t.state = T_PREEMPTED
        sched.run_on(c)
        if sched.curr[c] is not task:
            prev_state = 0
            other = self._curr_thread(c)
            if other is not None:
                p = other.pending
                if p is not None and self._blocked(p):
                    self.sleep(other)
                else:
                    if p is not None and not p.ctx.ran and p.ctx.entered:
                        self.run_path(other)
                    other.state = T_PREEMPTED
                    prev_state = STATE_PREEMPTED
            elif sched.curr[c].pid:
                prev_state = STATE_PREEMPTED      # a task of the machine: preempted
            sched.run_on(c)
            if t.state in (T_ASLEEP, T_STOPPED):
                self.wake(t, c)                   # nothing the model saw woke it
            elif t.cpu >= 0 and t.cpu != c:
                self._migrate(t, c)
            pinned = k.boot_clock.pinned
            idle = sched.curr[c] is sched.idle[c]
            if idle and t.state in (T_WOKEN, T_NEW) and t.woken_at and t.cpu == c:
                self._pin_on(c, t.woken_at + SWITCH_STEP)   # an idle CPU runs it at once
            wl.sched.switch(c, task, prev_state=prev_state)
            self._running(t, c)
            self._back(pinned)
        self._running(t, c)

    def _running(self, t: Thread, c: int) -> None:
        """``t`` is current on ``c``; a new task's first return comes first."""
        t.cpu = c
        t.state = T_RUNNING
        self.wl.k.sched.set_current(c, t.task)
        if t.first_return is not None:
            self._first_return(t)

    def _switch(self, cpu: int, nxt: Task, prev_state: int) -> None:
        """__schedule() on ``cpu`` to ``nxt`` (the idle task: the CPU idles)."""
        wl = self.wl
        wl.k.sched.run_on(cpu)
        wl.sched.switch(cpu, nxt, prev_state=prev_state)

    def _migrate(self, t: Thread, cpu: int) -> None:
        """The load balancer of ``cpu`` pulled runnable ``t`` over (set_task_cpu())."""
        wl = self.wl
        task = t.task
        wl.emit_ctx(D, wl.base_depth() + 1, "sched_migrate_task", task.comm, task.pid, task.prio,
                    t.cpu, cpu)
        wl.sched.task_cpu[task.pid] = cpu

    def _blocked(self, p: Pending) -> bool:
        """Another task is seen on the CPU of the task in ``p``: had it blocked in it (a
        syscall that can sleep, entered a while ago and not woken from it yet), or was it
        preempted?"""
        name = p.ctx.sc.name
        return (not p.slept and (name in MAY_SLEEP or name in SLEEP_D)
                and self.now - p.t0 > DISPLACED_NS)

    def sleep(self, t: Thread, state: int = 0) -> None:
        """``t`` blocks in its pending syscall (or, with none, where it is): right after
        the syscall's path it is switched out and its CPU idles."""
        wl = self.wl
        k = wl.k
        sched = k.sched
        p = t.pending
        saved = sched.cpu
        pinned = k.boot_clock.pinned
        if p is not None and not p.ctx.ran and p.ctx.entered:
            self.run_path(t)
        if not state:
            state = STATE_D if p is not None and p.ctx.sc.name in SLEEP_D else STATE_S
            if p is not None and p.ctx.sc.name not in MAY_SLEEP and state == STATE_S:
                state = STATE_D                  # a lock or I/O: an uninterruptible wait
        c = t.cpu
        if p is not None and c >= 0:
            self._pin_on(c, p.t0 + SLEEP_STEP)
        if c >= 0 and sched.curr[c] is t.task:
            self._switch(c, sched.idle[c], state)
        t.state = T_ASLEEP
        t.sleep_state = state
        if p is not None:
            p.slept = True
            p.ctx.data["slept"] = 1
            self.hold[p.cpu] = None
        self._back(pinned)
        sched.run_on(saved)

    def ensure_asleep(self, t: Thread) -> None:
        """A waker is about to wake ``t``, which is in a syscall it has not been seen to
        sleep in: it slept (it is waiting for what the waker does)."""
        if t.state in (T_RUNNING, T_PREEMPTED) and t.pending is not None:
            self.sleep(t)

    def wake(self, t: Thread, cpu: int, target: int = -1, locks: int = 0, irq: bool = False) -> None:
        """try_to_wake_up(t) from the code running on ``cpu`` now (the current task there,
        or its idle task), which holds ``locks`` spinlocks (the preempt depth they add):
        sched_waking there; the target is ``target`` (default: the CPU ``t`` last ran
        on; another one: it migrates); a wakeup of an idle target from another CPU is
        queued: sched_wakeup in that CPU's IPI.  ``irq``: an interrupt of the task running
        there woke it."""
        wl = self.wl
        k = wl.k
        sched = k.sched
        task = t.task
        saved = sched.cpu
        saved_flags = sched.irq_flags
        if irq:
            sched.irq_flags = HARDIRQ
        c = cpu % k.nr_cpus
        last = t.cpu if t.cpu >= 0 else c
        target = last if target < 0 else target % k.nr_cpus
        sched.run_on(c)
        base = wl.base_depth() + locks
        wl.emit_ctx(D, base + 2, "sched_waking", task.comm, task.pid, task.prio, target)
        wl.sites.call(WAKEUP)
        if target != last:
            wl.emit_ctx(D, base + 2, "sched_migrate_task", task.comm, task.pid, task.prio, last,
                        target)
            t.cpu = target
        t.state = T_WOKEN
        if target == c or sched.curr[target] is not sched.idle[target] or not wl.background.live:
            resched = D | (NEED_RESCHED if sched.curr[target].pid == 0 else 0)
            wl.emit_ctx(resched, base + 3, "sched_wakeup", task.comm, task.pid, task.prio, target)
            t.woken_at = k.boot_clock.pinned or self.now
            wl.background.traced_woken(t, target)
        else:
            # ttwu_queue_wakelist(): the idle target activates it in its IPI
            t.woken_at = k.boot_clock.pinned or self.now

            def activate() -> None:
                wl.sched.activate(target, task)
                t.woken_at = k.boot_clock.pinned or self.now
                wl.background.traced_woken(t, target)
            wl.smp.ttwu_queue_wakelist(target, task.pid, activate, base + 2)
        wl.sched.task_cpu[task.pid] = target
        wl.sched.asleep.discard(task.pid)
        sched.irq_flags = saved_flags
        sched.run_on(saved)

    def resume(self, t: Thread) -> None:
        """``t``, woken onto its idle CPU in an interrupt there, runs once the interrupt
        returns (the machine's scheduler)."""
        if t.state in (T_WOKEN, T_NEW) and t.cpu >= 0:
            self._run(t, t.cpu)

    def _idle_cpu(self, cpu: int) -> int:
        """Where an unknown waker ran: ``cpu``'s idle context, else another idle CPU's
        (``cpu`` itself when none idles: an interrupt there)."""
        sched = self.wl.k.sched
        if sched.curr[cpu] is sched.idle[cpu]:
            return cpu
        return next((c for c in range(sched.nr_cpus) if sched.curr[c] is sched.idle[c]), cpu)

    def _next_on(self, cpu: int) -> Task:
        """What runs on ``cpu`` after its current task leaves it: a woken traced task
        waiting for it, else the idle task."""
        for t in self.threads.values():
            if t.state == T_WOKEN and t.cpu == cpu:
                return t.task
        return self.wl.k.sched.idle[cpu]

    def stop(self, t: Thread) -> None:
        """do_signal_stop(): ``t`` stops (T) until a SIGCONT."""
        c = t.cpu
        if c >= 0 and self.wl.k.sched.curr[c] is t.task:
            self._switch(c, self._next_on(c), STATE_STOPPED)
        t.state = T_STOPPED
        self.wl.k.sched.run_on(c)

    def switch_dead(self, t: Thread, state: int) -> None:
        """do_task_dead(): ``t``'s last switch (prev_state Z or X)."""
        k = self.wl.k
        c = t.cpu
        nxt = self._next_on(c)
        if k.sched.curr[c] is t.task:
            self._switch(c, nxt, state)
            woken = self.threads.get(nxt.pid) if nxt.pid else None
            if woken is not None and woken.task is nxt:
                woken.state = T_RUNNING
        t.state = T_DEAD
        self.hold[c] = None

    # ------------------------------------------------------------------ syscalls
    def sys_enter(self, ts: int, cpu: int, tid: int, tgid: int, nr: int,
                  args: tuple[int, ...], caps: dict[int, bytes], compat: bool = False) -> None:
        """A syscall's entry: its entry tracepoints now; its path when its outcome is
        known or needed."""
        t = self._known(tid, tgid)
        self._release(t)
        t.returned = None
        p = t.pending
        if p is not None:
            if p.restart and nr in (p.ctx.sc.nr, NR_RESTART_SYSCALL):
                p.restart = False          # its restart: the same syscall goes on
                p.restarted = True
                return
            self._at(ts)
            self._run(t, cpu)
            if p.restart:
                self._flush_restart(t)
            else:
                self._abandon(t)           # it never returned visibly
            self._done()
            return self.sys_enter(ts, cpu, tid, tgid, nr, args, caps, compat)
        if t.restart_nr >= 0 and nr in (t.restart_nr, NR_RESTART_SYSCALL) and not compat:
            # the restart of a syscall the mode switch interrupted: it goes on asleep.
            # Re-entered as itself (-ERESTARTSYS & co) it has its own arguments and
            # captures again; restart_syscall's are not its (the restart block holds them)
            sc = self.table.by_nr[t.restart_nr]
            t.restart_nr = -1
            own = nr == sc.nr
            ctx = SyscallCtx(sc, tuple(args) if own else (), caps if own else {}, t,
                             entered=False, t0=ts)
            t.pending = Pending(ctx, cpu % self.wl.k.nr_cpus, restarted=True)
            self._pending[tid] = t
            t.state = T_ASLEEP
            return
        # an i386 syscall (numbered as on i386): its raw_syscalls events only
        sc = self.table.by_nr.get(nr) if not compat else None
        if sc is None:
            sc = self._unknown(nr)
        self._at(ts)
        self._run(t, cpu)
        ctx = SyscallCtx(sc, tuple(args), caps, t, t0=ts, compat=compat)
        fd_i = self._fd_arg.get(nr, -1) if not compat else -1
        if fd_i >= 0:
            ctx.file = self.file(t.proc, arg_int(args[fd_i]))
        self.wl.k.mem.set_user_view(t.proc.tgid, caps_at(args, caps))
        self.wl.syscalls.sys_enter(ctx)
        t.pending = Pending(ctx, t.cpu)
        self._pending[tid] = t
        if not sc.noreturn:
            self.hold[t.cpu] = ts
        self._done()

    def _unknown(self, nr: int) -> Syscall:
        """A number the kernel does not implement: __x64_sys_ni_syscall (-ENOSYS)."""
        return Syscall(nr, f"syscall_{nr}", None, False, ())

    def sys_exit(self, ts: int, cpu: int, tid: int, tgid: int, nr: int, ret: int,
                 outs: dict[int, bytes] | None = None, asleep_ns: int = 0,
                 switches: int = SWITCHES_UNKNOWN, compat: bool = False) -> None:
        """A syscall returns ``ret``; ``asleep_ns``/``switches`` are the tracer's schedstat
        readings between its entry and exit stops."""
        t = self.threads.get(tid)
        if t is None:
            return
        p = t.pending
        if p is None or (p.ctx.sc.nr != nr and not (p.restarted and nr == NR_RESTART_SYSCALL)):
            owed = t.first_return or t.returned     # the child's first return: run() shows it
            self._at(ts)
            self._run(t, cpu)
            if p is not None:
                self._abandon(t)
            if owed is None or nr != owed.nr or ret != 0:
                self._bare_exit(t, nr, ret, compat)   # entered before syscalls were reported
            self._done()
            return
        if p.ctx.sc.name == "prctl" and ret == 0 and arg_int(p.ctx.args[0]) == PR_SET_NAME:
            # the tracer sees the new comm at the task's next stop: the rename is shown
            # inside the prctl, so its return waits for it
            p.renaming, p.restart_ret, p.restart_ts = True, ret, ts
            return
        if ret in ERESTART and not p.restart:
            # held back: a visible signal shows it, a restart continues the syscall
            p.restart, p.restart_ret, p.restart_ts = True, ret, ts
            if (self._slept(p, ts, asleep_ns, switches) and not p.slept
                    and t.state in (T_RUNNING, T_PREEMPTED)):
                self.sleep(t)
            return
        if p.restart:
            p.restart = False
        self._close(t, ts, cpu, ret, outs or {}, self._slept(p, ts, asleep_ns, switches))

    def _slept(self, p: Pending, ts: int, asleep_ns: int, switches: int) -> bool:
        """Did the task sleep in the syscall of ``p``?  The host task waited for each
        FUSE answer the mount gave it (one switch each), which on the kernel is the
        tracefs file's own code running in the syscall (a request that waits sleeps in
        ``request_block``): only a wait beyond those is a sleep (a poll that blocks
        after its FUSE_POLL)."""
        name = p.ctx.sc.name
        if p.served:
            if switches == SWITCHES_UNKNOWN:
                return (name in MAY_SLEEP and ts - p.t0 - p.served_ns > BLOCK_NS)
            return (switches > p.served and asleep_ns - p.served_ns >= SLEPT_NS
                    and name not in EVENT_STOPS)
        if switches == SWITCHES_UNKNOWN:
            return (name in MAY_SLEEP or name in SLEEP_D) and ts - p.t0 > BLOCK_NS
        return switches > 0 and asleep_ns >= SLEPT_NS and name not in EVENT_STOPS

    def _close(self, t: Thread, ts: int, cpu: int, ret: int, outs: dict[int, bytes],
               slept: bool) -> None:
        """The pending syscall returns ``ret`` at ``ts``: its path (with the real value)
        if it did not run yet, its sleep, its wakeup, its return."""
        p = t.pending
        assert p is not None
        wl = self.wl
        k = wl.k
        ctx = p.ctx
        self.now = ts
        ctx.ret = ret
        ctx.outs = outs
        if ctx.entered and not ctx.ran:
            self.run_path(t)
        if slept and not p.slept and t.state == T_RUNNING:
            self.sleep(t)
        wl.catch_up_to(ts)
        if t.state in (T_ASLEEP, T_STOPPED):
            # nothing the model saw woke it: its body's waker, else the idle context
            wake_at = max(p.t0 + SLEEP_STEP, ts - WAKE_LEAD)
            self._pin(wake_at)
            body = wl.syscalls.bodies.get(ctx.sc.name)
            if body is None or body.wake is None or not body.wake(ctx, wake_at):
                waker = self._idle_cpu(t.cpu)
                self.wake(t, waker, cpu, irq=k.sched.curr[waker] is not k.sched.idle[waker])
        if t.state != T_RUNNING or k.sched.curr[cpu % k.nr_cpus] is not t.task:
            self._pin(max(p.t0, t.woken_at + SWITCH_STEP))
            self._run(t, cpu)
            self._pin(max(p.t0, t.woken_at + SWITCH_STEP) + EXIT_STEP)
        elif p.slept:
            self._pin(t.woken_at + SWITCH_STEP + EXIT_STEP)   # its waker switched it in
            k.sched.run_on(t.cpu)
        else:
            self._pin(p.t0 + EXIT_STEP)         # it ran straight through
            k.sched.run_on(t.cpu)
        self.hold[p.cpu] = None
        t.pending = None
        self._pending.pop(t.task.pid, None)
        # the user memory stays readable through the exit path: an eprobe or a synthetic
        # event of sys_exit_* fetches the pathname the call passed
        k.mem.set_user_view(t.proc.tgid, caps_at(ctx.args, ctx.caps))
        wl.mm.syscall_exit(t, ctx, ret)
        wl.syscalls.sys_exit(ctx, ret)
        k.mem.set_user_view(t.proc.tgid, None)
        track(ctx, ret)
        wl.mm.after_syscall(t, t.cpu)
        self._done()

    def run_path(self, t: Thread) -> None:
        """The pending syscall's path runs (right after its entry, on its CPU)."""
        p = t.pending
        assert p is not None
        sched = self.wl.k.sched
        saved = sched.cpu
        pinned = self.wl.k.boot_clock.pinned
        self._pin_on(p.cpu, p.t0 + 1)
        if p.cpu == t.cpu and sched.curr[p.cpu] is t.task:
            sched.run_on(p.cpu)
        else:
            sched.set_current(p.cpu, t.task)     # it ran there (switched out since)
        self.wl.k.mem.set_user_view(t.proc.tgid, caps_at(p.ctx.args, p.ctx.caps))
        self.wl.syscalls.run(p.ctx)
        self._back(pinned)
        sched.run_on(saved)

    def _bare_exit(self, t: Thread, nr: int, ret: int, compat: bool) -> None:
        """The exit of a syscall whose entry was not seen: only its exit events."""
        sc = (self.table.by_nr.get(nr) if not compat else None) or self._unknown(nr)
        ctx = SyscallCtx(sc, (), {}, t, entered=False, t0=self.now, compat=compat)
        self.wl.syscalls.sys_exit(ctx, ret)

    def _abandon(self, t: Thread) -> None:
        """The pending syscall ends without a return the model can show."""
        p = t.pending
        assert p is not None
        if p.ctx.ran:
            self.wl.syscalls.abandon(p.ctx)
        self.hold[p.cpu] = None
        t.pending = None
        self._pending.pop(t.task.pid, None)

    def _flush_restart(self, t: Thread) -> None:
        """The held-back -ERESTART* return of ``t``'s syscall is what it returned."""
        p = t.pending
        assert p is not None and p.restart
        p.restart = False
        pinned = self.wl.k.boot_clock.pinned
        self._close(t, max(self.now, p.restart_ts), t.cpu, p.restart_ret, {}, False)
        self._back(pinned)

    def flush_restart(self, t: Thread) -> None:
        """A visible signal delivery follows an interrupted syscall: its return shows."""
        if t.pending is not None and t.pending.restart:
            self._flush_restart(t)

    def interrupted(self, ts: int, cpu: int, tid: int, tgid: int, nr: int, ret: int) -> None:
        """The switch to syscalls mode stopped ``tid`` on its way out of syscall ``nr``,
        entered before syscalls were reported, returning ``ret``."""
        t = self.threads.get(tid)
        if t is None:
            return
        if ret in ERESTART:
            # it was asleep in it: the restart entry that follows continues it unseen
            t.restart_nr = nr
            sched = self.wl.k.sched
            if t.cpu >= 0 and sched.curr[t.cpu] is t.task:
                sched.curr[t.cpu] = sched.idle[t.cpu]
            t.state = T_ASLEEP
            return
        owed = t.first_return or t.returned     # the child's first return: run() shows it
        self._at(ts)
        self._run(t, cpu)
        if owed is None or nr != owed.nr or ret != 0:
            self._bare_exit(t, nr, ret, False)
        self._done()

    def _first_return(self, t: Thread) -> None:
        """ret_from_fork → syscall_exit_to_user_mode(): the child's first return from
        the fork it was made by, 0."""
        sc = t.first_return
        assert sc is not None
        t.first_return = None
        t.returned = sc
        ctx = SyscallCtx(sc, (), {}, t, entered=False, t0=self.now)
        self.wl.syscalls.sys_exit(ctx, 0)

    # ------------------------------------------------------------------ process life
    def new_task(self, ts: int, cpu: int, tid: int, child: int, child_tgid: int, event: int,
                 flags: int, comm: str, child_cpu: int = -1) -> None:
        """copy_process() in ``tid`` made ``child``, which wake_up_new_task() put on
        ``child_cpu`` (event 0: its creator died first)."""
        parent = self.threads.get(tid)
        if parent is None:
            proc = self.procs.get(child_tgid) if child_tgid != child else None
            proc = proc or self._new_proc(child_tgid, self.procs.get(tid))
            t = self._new_thread(child, proc, comm)
            t.cpu = cpu % self.wl.k.nr_cpus
            return
        self._release(parent)
        self._at(ts)
        self._run(parent, cpu)
        target = child_cpu % self.wl.k.nr_cpus if child_cpu >= 0 else parent.cpu
        self.wl.process.traced_fork(parent, child, child_tgid, event, flags, comm, target)
        self._done()

    def new_thread(self, parent: Thread, tid: int, tgid: int, flags: int, comm: str,
                   cpu: int) -> Thread:
        """The model's objects for a task copy_process() made (CLONE_THREAD: same group;
        CLONE_FILES/CLONE_SIGHAND: shared tables, else copies)."""
        pp = parent.proc
        if tgid == pp.tgid:
            proc = pp
        else:
            proc = self._new_proc(tgid, pp)
            pp.children.append(proc)
            if flags & CLONE_FILES:
                proc.files = pp.files
                pp.files.shared = True
            else:
                proc.files = pp.files.copy()
            proc.sig = pp.sig if flags & CLONE_SIGHAND else pp.sig.copy()
            proc.exit_signal = flags & 0xFF
            proc.pgid = pp.pgid
        t = self._new_thread(tid, proc, comm)
        t.task.comm = parent.task.comm
        t.task.prio = parent.task.prio
        t.blocked = parent.blocked
        t.cpu = cpu
        t.state = T_NEW
        t.woken_at = self.wl.k.boot_clock.pinned or self.now     # wake_up_new_task()
        return t

    def exec(self, ts: int, cpu: int, tid: int, old_tid: int, tgid: int, comm: str,
             filename: str) -> None:
        """exec_binprm() succeeded in ``old_tid``, now ``tid``: the exec events (a
        non-leader took over the leader's pid in de_thread(), after sched_prepare_exec)."""
        t = self._known(old_tid if old_tid in self.threads else tid, tgid)
        self._release(t)
        self._at(ts)
        self._run(t, cpu)
        interp = self.host.interp(tgid, filename) or filename
        self.wl.process.prepare_exec(t, filename, interp)
        if old_tid != tid and old_tid in self.threads:
            self._take_over(old_tid, tid)
        self.wl.process.traced_exec(t, old_tid, comm, filename)
        self._done()

    def _take_over(self, old_tid: int, tid: int) -> None:
        """de_thread(): the exec'ing thread ``old_tid`` takes the leader's pid ``tid``;
        the old leader is released (freed later)."""
        t = self.threads.pop(old_tid)
        sched = self.wl.k.sched
        leader = self.threads.pop(tid, None)
        proc = t.proc
        proc.threads.pop(old_tid, None)
        if leader is not None:
            proc.threads.pop(tid, None)
            if leader.state != T_DEAD:
                leader.state = T_DEAD
            self.wl.process.release(leader.task, leader.cpu if leader.cpu >= 0 else t.cpu)
        self.wl.sched.traced.discard(old_tid)
        if sched.tasks.get(old_tid) is t.task:
            del sched.tasks[old_tid]
        t.task.pid = tid
        sched.tasks[tid] = t.task
        self.threads[tid] = t
        proc.threads[tid] = t
        proc.leader = t.task
        self.wl.sched.traced.add(tid)
        if self._pending.pop(old_tid, None) is t:
            self._pending[tid] = t
        if t.pending is not None and t.pending.ctx.ran:
            self.wl.syscalls.rekey(t.pending.ctx, old_tid)

    def comm(self, ts: int, cpu: int, tid: int, tgid: int, comm: str) -> None:
        """__set_task_comm() outside exec (prctl(PR_SET_NAME), a write to comm): inside
        the prctl that did it when its return is held."""
        t = self._known(tid, tgid)
        new = comm[:TASK_COMM_LEN - 1]
        p = t.pending
        if p is not None and p.renaming:
            if not p.ctx.ran:
                self.run_path(t)
            pinned = self.wl.k.boot_clock.pinned
            self._pin_on(t.cpu, p.t0 + 1)
            self.wl.k.sched.run_on(t.cpu)
            self.wl.process.rename(t.task, new)
            self._back(pinned)
            self._release(t)
            return
        if t.task.comm == new:
            return
        self._at(ts)
        self._run(t, cpu)
        self.wl.process.rename(t.task, new)
        self._done()

    def _release(self, t: Thread) -> None:
        """A return held for the new comm is shown (the comm came, or never will)."""
        p = t.pending
        if p is not None and p.renaming:
            p.renaming = False
            pinned = self.wl.k.boot_clock.pinned
            self._close(t, p.restart_ts, t.cpu, p.restart_ret, {}, False)
            self._back(pinned)

    def exit(self, ts: int, cpu: int, tid: int, tgid: int, status: int, group: bool) -> None:
        """do_exit() of ``tid`` (wait status ``status``)."""
        t = self.threads.get(tid)
        if t is None or t.state == T_DEAD:
            return
        self._release(t)
        self._at(ts)
        self._run(t, cpu)
        p = t.pending
        if p is not None:
            if p.restart:
                self._flush_restart(t)
            elif p.ctx.sc.noreturn:
                if p.ctx.entered and not p.ctx.ran:
                    self.run_path(t)
            elif status & 0x7F:
                # a fatal signal ended its syscall: the syscall returns, then do_exit()
                ret = INTERRUPTED_RET.get(p.ctx.sc.name, ERESTARTSYS)
                pinned = self.wl.k.boot_clock.pinned
                self._close(t, ts, cpu, ret, {}, False)
                self._back(pinned)
            else:
                self._abandon(t)
        self.wl.process.traced_exit(t, status)
        if t.pending is not None:
            self._abandon(t)
        self._done()

    def gone(self, ts: int, cpu: int, tid: int, tgid: int, status: int) -> None:
        """The tracer saw ``tid`` dead for good: its end if not seen; reaped unless its
        traced parent will reap it."""
        t = self.threads.get(tid)
        if t is None:
            return
        if t.state != T_DEAD:
            self.exit(ts, t.cpu if t.cpu >= 0 else cpu, tid, tgid, status, True)
        self._at(ts)
        proc = t.proc
        if proc.zombie and not proc.released and (proc.parent is None or not proc.parent.live()):
            self.wl.process.reap(proc, self.wl.k.sched.cpu)
        self._forget(t)
        self._done()

    def _forget(self, t: Thread) -> None:
        """The model's objects of an ended thread go (its task lives on until freed)."""
        tid = t.task.pid
        if self.threads.get(tid) is t:
            del self.threads[tid]
            self.wl.sched.traced.discard(tid)
        proc = t.proc
        if proc.threads.get(tid) is t:
            del proc.threads[tid]
        if not proc.threads and proc.released and self.procs.get(proc.tgid) is proc:
            del self.procs[proc.tgid]

    # ------------------------------------------------------------------ memory
    def faults(self, ts: int, cpu: int, tid: int, tgid: int, minflt: int, majflt: int) -> None:
        """``tid`` took ``minflt`` minor and ``majflt`` major faults since its last report
        (the record comes before the stop's own): in user space before this stop, or,
        inside a syscall, shown when it returns."""
        t = self.threads.get(tid)
        if t is None or t.state == T_DEAD or not (minflt or majflt):
            return
        if t.pending is not None:
            self.wl.mm.took_faults(t, minflt, majflt, ts, cpu)
            return
        start = ts - (minflt + majflt) * FAULT_NS
        self._at(start)
        self._run(t, cpu)
        self.wl.mm.took_faults(t, minflt, majflt, start, t.cpu)
        self._done()

    def maps(self, ts: int, cpu: int, tid: int, tgid: int, text: str) -> None:
        """/proc/TGID/maps at an exec stop (the record comes before the EXEC): the new
        image's mappings, used by the exec that follows."""
        self.wl.mm.maps[tgid] = text

    # ------------------------------------------------------------------ signals
    def signal(self, ts: int, cpu: int, tid: int, tgid: int, signo: int, errno: int, code: int,
               pid: int, uid: int) -> None:
        """get_signal() dequeued ``signo`` for ``tid`` (the tracer's delivery stop)."""
        t = self.threads.get(tid)
        if t is None:
            return
        self._release(t)
        sigs = self.wl.signals
        if sigs.dropped(t, signo):
            # an untraced kernel dropped it when it was sent; a SIGCONT still ended a stop
            t.proc.sig.pending.discard(signo)
            if t.state in (T_STOPPED, T_WOKEN):
                self._at(ts)
                self._run(t, cpu)
                self._done()
            return
        self._at(ts)
        if t.pending is not None and t.pending.restart:
            # the syscall it interrupted returned (the exit the tracer saw first), and the
            # signal is delivered on the same way out
            self._flush_restart(t)
            self._pin_on(t.cpu, 0)
        self._run(t, cpu)
        sigs.deliver(t, signo, errno, code)
        self._done()


# clone flags (include/uapi/linux/sched.h)
CLONE_VM = 0x100
CLONE_FILES = 0x400
CLONE_SIGHAND = 0x800
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000


def caps_at(args: tuple[int, ...], caps: dict[int, bytes]) -> dict[int, bytes] | None:
    """The captured user memory of a syscall as address -> bytes (C strings get their
    NUL back), what ``+0($arg2):ustring`` reads on the way."""
    if not caps:
        return None
    out: dict[int, bytes] = {}
    for i, data in caps.items():
        if i < len(args) and args[i]:
            out[args[i]] = data + b"\0"
    return out

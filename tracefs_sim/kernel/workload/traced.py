"""Host tasks traced under ``tracefs-sim run``: what the ptrace tracer observed becomes the
paths and events the 6.12 kernel runs for it (docs/host-tracing.md).

The host layer decodes the tracer's records and calls one method per record, in time
order, with plain values; this module never does I/O.  Every observation is processed
"at" its time: the boot clock is pinned to it, the background machine first catches up
to it, and the task is made current on the CPU it was seen on (a ``sched_switch`` when
something else ran there).

Syscalls: the entry runs the entry path at once (``raw_syscalls:sys_enter``,
``syscalls:sys_enter_NAME`` with the real registers, ``x64_sys_call`` →
``__x64_sys_NAME`` → …, left open), so a request the task makes to the mount meanwhile
runs inside it; the exit returns the real value.  A syscall that can sleep and took
longer than ``BLOCK_NS`` slept: the task is switched out right after its entry path and
woken and switched back in just before its exit, at the real times.  While such a syscall
is pending, the CPU's background timeline is held back (``hold``), so the ticks that
happened while the task slept see the CPU idle, not the task.

Process life: ``NEW_TASK`` runs copy_process's events in the parent (``task_newtask``,
``sched_process_fork``, ``sched_wakeup_new``) and the child's first return from the fork
(``sys_exit`` with 0) when the child is first seen running; ``EXEC`` runs
``sched_prepare_exec``/``task_rename``/``sched_process_exec``; ``EXIT`` runs do_exit
(``sched_process_exit``, the parent's SIGCHLD and wakeup, the last switch as a zombie);
the task is freed (``sched_process_free``, an RCU callback) when it is gone.  Signals:
``signal_deliver`` at the delivery, with the handler the task installed
(``rt_sigaction``); ``signal_generate`` where a traced task sent it (kill, tgkill…) or
the kernel did for something observed (SIGCHLD of an exiting child).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..sched import TASK_COMM_LEN, Task
from ..syscall_table import Syscall, SyscallTable
from .defs import (
    CLD_EXITED,
    GFP_KERNEL,
    GFP_ZERO,
    PWR_EVENT_EXIT,
    SIGCHLD,
    STATE_D,
    STATE_PREEMPTED,
    STATE_S,
    STATE_Z,
    D,
)
from .syscalls import SyscallCtx

if TYPE_CHECKING:
    from . import Workload

BLOCK_NS = 200_000         # a syscall that can sleep and took longer than this slept
# (the time between the tracer's entry and exit stops includes its own round trip, some
# tens of microseconds: a shorter syscall is taken to have run straight through)
HORIZON_NS = 2_000_000     # pending this long, a syscall that can sleep is taken as asleep
SLEEP_STEP = 2_000         # ns between the entry path and the switch away (and back)

# syscalls that can put the task to sleep (TASK_INTERRUPTIBLE unless listed in SLEEP_D)
MAY_SLEEP = frozenset((
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev",
    "pwritev2", "nanosleep", "clock_nanosleep", "wait4", "waitid", "poll", "ppoll", "select",
    "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2", "futex", "futex_waitv", "pause",
    "rt_sigsuspend", "rt_sigtimedwait", "accept", "accept4", "connect", "recvfrom", "recvmsg",
    "recvmmsg", "sendto", "sendmsg", "sendmmsg", "msgrcv", "msgsnd", "semop", "semtimedop",
    "flock", "fcntl", "sync", "syncfs", "fsync", "fdatasync", "msync", "sendfile", "splice",
    "tee", "copy_file_range", "io_getevents", "io_uring_enter", "vfork", "mq_timedreceive",
    "mq_timedsend",
))
SLEEP_D = frozenset(("sync", "syncfs", "fsync", "fdatasync", "msync"))
OPEN_SYSCALLS = frozenset(("openat", "open", "creat", "openat2"))
FORK_SYSCALLS = frozenset(("clone", "clone3", "fork", "vfork"))
KILL_SYSCALLS = {"kill": (0, 1), "tkill": (0, 1), "tgkill": (1, 2)}  # target pid, sig arg
CLONE_THREAD = 0x00010000
OOM_SCORE_ADJ = 0
# lbs_task of the reference kernel's LSMs: AppArmor's struct aa_task_ctx (32) and the BPF
# LSM's struct bpf_storage_blob (8)
LSM_TASK_BLOB = 40
SI_USER = 0
TRACE_SIGNAL_DELIVERED = 0
SIGACTION = struct.Struct("<QQ")   # sa_handler, sa_flags (the start of struct sigaction)
SIG_DFL = 0


@dataclass(slots=True)
class Pending:
    """A syscall a traced task is in: entered (frames open), maybe asleep."""

    sc: Syscall
    args: tuple[int, ...]
    t0: int
    cpu: int
    ctx: SyscallCtx
    asleep: bool = False
    served: bool = False     # it made a request to the mount: it slept only if that blocked


@dataclass(slots=True)
class Traced:
    """One traced host thread."""

    task: Task
    cpu: int = -1
    pending: Pending | None = None
    forked_by: str | None = None     # the fork syscall whose return a new child owes
    exited: bool = False


@dataclass(slots=True)
class Group:
    """What the threads of one traced process share: files and signal handlers."""

    fds: dict[int, str] = field(default_factory=dict)          # fd -> file name
    handlers: dict[int, tuple[int, int]] = field(default_factory=dict)  # sig -> (handler, flags)
    parent: int = 0


class TracedTasks:
    """The traced host threads of one kernel and their observed activity."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.table = SyscallTable.load()
        self.threads: dict[int, Traced] = {}
        self.groups: dict[int, Group] = {}
        self.hold: list[int | None] = [None] * wl.k.nr_cpus   # CPU timeline held at this ns
        self._open_path: dict[int, str] = {}   # tid -> the file its pending open names

    # ------------------------------------------------------------------ queries
    def owns(self, tid: int) -> bool:
        """Is ``tid`` a traced thread (its syscalls come from the tracer)?"""
        t = self.threads.get(tid)
        return t is not None and not t.exited

    def in_syscall(self, tid: int) -> bool:
        t = self.threads.get(tid)
        return t is not None and t.pending is not None

    # ------------------------------------------------------------------ time
    def _at(self, ts: int, cpu: int) -> None:
        """Process what follows at boot time ``ts`` on ``cpu``: the background catches up
        to it (held CPUs excepted), the clock reads from ``ts``."""
        wl = self.wl
        k = wl.k
        self._settle(ts)
        wl.catch_up_to(ts)
        k.boot_clock.pin(ts)
        k.sched.run_on(cpu % k.nr_cpus)

    def _settle(self, now: int) -> None:
        """Syscalls that can sleep and have been pending past the horizon are asleep."""
        for t in self.threads.values():
            p = t.pending
            if (p is not None and not p.asleep and not p.served and p.sc.name in MAY_SLEEP
                    and now - p.t0 > HORIZON_NS):
                self._sleep(t, p)

    # ------------------------------------------------------------------ scheduling
    def _run(self, t: Traced, cpu: int) -> None:
        """``t`` runs on ``cpu`` now: switched in (woken first when it slept)."""
        wl = self.wl
        k = wl.k
        cpu %= k.nr_cpus
        sched = k.sched
        task = t.task
        if t.cpu >= 0 and t.cpu != cpu and sched.curr[t.cpu] is task:
            # it moved: the CPU it left goes idle
            sched.run_on(t.cpu)
            wl.sched.switch(t.cpu, sched.idle[t.cpu], prev_state=STATE_PREEMPTED)
            wl.emit_ctx(D, 1, "cpu_idle", 1, t.cpu)
        sched.run_on(cpu)
        if sched.curr[cpu] is not task:
            prev = sched.curr[cpu]
            if task.pid in wl.sched.asleep:
                wl.sched.wakeup(cpu, task)
            if prev is sched.idle[cpu]:
                wl.emit_ctx(D, 1, "cpu_idle", PWR_EVENT_EXIT, cpu)
            wl.sched.switch(cpu, task, prev_state=STATE_PREEMPTED if prev.pid else 0)
        t.cpu = cpu
        sched.set_current(cpu, task)

    def _sleep(self, t: Traced, p: Pending) -> None:
        """The syscall ``p`` sleeps: right after its entry path the task is switched out
        and its CPU goes idle (its background timeline is released)."""
        wl = self.wl
        k = wl.k
        p.asleep = True
        cpu = p.cpu
        self.hold[cpu] = None
        k.boot_clock.pin(p.t0 + SLEEP_STEP)
        sched = k.sched
        sched.run_on(cpu)
        if sched.curr[cpu] is t.task:
            state = STATE_D if p.sc.name in SLEEP_D else STATE_S
            wl.sched.switch(cpu, sched.idle[cpu], prev_state=state)
            wl.emit_ctx(D, 1, "cpu_idle", 1, cpu)
        # asleep even when another task (the child it vforked) had its CPU meanwhile:
        # what ends the sleep (the child's exit) wakes it
        wl.sched.asleep.add(t.task.pid)

    # ------------------------------------------------------------------ tasks
    def _thread(self, tid: int, tgid: int, comm: str = "") -> Traced:
        t = self.threads.get(tid)
        if t is None:
            task = self.wl.k.sched.task(tid, comm or "<...>")
            task.tgid = tgid
            t = self.threads[tid] = Traced(task)
            self.groups.setdefault(tgid, Group())
            self.wl.sched.traced.add(tid)
        return t

    def attached(self, ts: int, cpu: int, tid: int, tgid: int, comm: str) -> None:
        """CMD itself, seized before its execve: it exists, nothing ran yet.  From now on
        the machine's user space is the traced programs': the simulated shell session
        stops."""
        self.wl.shell.enabled = False
        self._thread(tid, tgid, comm)

    def new_task(self, ts: int, cpu: int, tid: int, child: int, child_tgid: int, event: int,
                 flags: int, comm: str) -> None:
        """copy_process() in the parent ``tid`` made ``child``: its events in the parent,
        the child's first wakeup; the child returns from the fork when first seen."""
        wl = self.wl
        k = wl.k
        parent = self._thread(tid, self.threads[tid].task.tgid if tid in self.threads else tid,
                              comm)
        self._at(ts, cpu)
        self._run(parent, cpu)
        c = self._thread(child, child_tgid, comm)
        c.task.comm = parent.task.comm
        c.task.prio = parent.task.prio
        if child_tgid != child:
            self.groups[child_tgid] = self.groups.setdefault(parent.task.tgid, Group())
        else:
            g = self.groups[child_tgid] = Group(dict(self.groups[parent.task.tgid].fds),
                                                dict(self.groups[parent.task.tgid].handlers))
            g.parent = parent.task.tgid
        wl.slab.cache_alloc("task_struct", "copy_process")
        # security_task_alloc() → lsm_task_alloc(): kzalloc() of the LSMs' task blob
        wl.slab.kmalloc("security_task_alloc", LSM_TASK_BLOB, GFP_KERNEL | GFP_ZERO)
        wl.emit("task_newtask", child, c.task.comm, flags, OOM_SCORE_ADJ)
        wl.process.fork(parent.task, c.task)
        wake = wl.sites.enter_chain(("wake_up_new_task",), "kernel_clone")
        wl.sched.wakeup_new(cpu % k.nr_cpus, c.task)
        wl.sites.leave_chain(wake)
        p = parent.pending
        c.forked_by = p.sc.name if p is not None and p.sc.name in FORK_SYSCALLS else "clone"
        k.boot_clock.unpin()

    def _ret_from_fork(self, t: Traced) -> None:
        """The child's first return to user space: syscall_exit_to_user_mode() of the fork
        it was made by, returning 0."""
        sc = self.table.by_name.get(t.forked_by or "clone")
        t.forked_by = None
        if sc is not None:
            self.wl.syscalls.exit(self._bare(sc), 0)

    def exec(self, ts: int, cpu: int, tid: int, old_tid: int, tgid: int, comm: str,
             filename: str) -> None:
        """exec_binprm() succeeded: the new image's name and the exec events.  A
        non-leader thread that exec'd took over the leader's pid."""
        wl = self.wl
        k = wl.k
        if old_tid != tid and old_tid in self.threads:
            t = self.threads.pop(old_tid)
            old_leader = self.threads.pop(tid, None)
            if old_leader is not None:
                old_leader.exited = True
                self._free(old_leader)
            k.sched.tasks.pop(old_tid, None)
            t.task.pid = tid
            k.sched.tasks[tid] = t.task
            self.threads[tid] = t
        t = self._thread(tid, tgid, comm)
        self._at(ts, cpu)
        self._run(t, cpu)
        in_execve = t.pending is not None and t.pending.sc.name in ("execve", "execveat")
        sc = self.table.by_name["execve"]
        ctx = None
        if not in_execve:
            ctx = wl.syscalls.enter(sc, (0, 0, 0, 0, 0, 0), None, filename)
        task = t.task
        wl.emit("sched_prepare_exec", filename, filename, task.pid, task.comm)
        old = task.comm
        task.comm = comm[:TASK_COMM_LEN - 1]
        if old != task.comm:
            wl.emit_ctx(0, 1, "task_rename", task.pid, old, task.comm, OOM_SCORE_ADJ)
        wl.emit("sched_process_exec", filename, task.pid, old_tid)
        k.trace.record_task(task)
        g = self.groups.setdefault(tgid, Group())
        g.handlers = {s: h for s, h in g.handlers.items() if h[0] == 1}   # SIG_IGN stays
        if ctx is not None:
            wl.syscalls.exit(ctx, 0)
        k.boot_clock.unpin()

    def comm(self, ts: int, cpu: int, tid: int, tgid: int, comm: str) -> None:
        """__set_task_comm() outside exec (prctl(PR_SET_NAME), a write to comm)."""
        t = self._thread(tid, tgid, comm)
        old = t.task.comm
        new = comm[:TASK_COMM_LEN - 1]
        if old == new:
            return
        self._at(ts, cpu)
        self.wl.emit_ctx(0, 1, "task_rename", tid, old, new, OOM_SCORE_ADJ)
        t.task.comm = new
        self.wl.k.trace.record_task(t.task)
        self.wl.k.boot_clock.unpin()

    def exit(self, ts: int, cpu: int, tid: int, tgid: int, status: int, group: bool) -> None:
        """do_exit(): the exit event, the parent's SIGCHLD and wakeup when the last thread
        of the group goes, and the last switch (a zombie)."""
        t = self.threads.get(tid)
        if t is None or t.exited:
            return
        wl = self.wl
        k = wl.k
        self._at(ts, cpu)
        self._run(t, cpu)
        task = t.task
        t.exited = True
        frames = t.pending.ctx.frames if t.pending is not None else []
        t.pending = None
        wl.emit("sched_process_exit", task.comm, task.pid, task.prio)
        last = not any(o.task.tgid == tgid and not o.exited for o in self.threads.values())
        g = self.groups.get(tgid)
        if last and g is not None and g.parent in self.threads:
            parent = self.threads[g.parent]
            wl.emit_ctx(D, 2, "signal_generate", SIGCHLD, 0, CLD_EXITED, parent.task.comm,
                        parent.task.pid, 1, TRACE_SIGNAL_DELIVERED)
            if parent.task.pid in wl.sched.asleep:
                wl.sched.wakeup(cpu % k.nr_cpus, parent.task)
        wl.sites.leave_chain(frames)
        sched = k.sched
        c = cpu % k.nr_cpus
        if sched.curr[c] is task:
            wl.sched.switch(c, sched.idle[c], prev_state=STATE_Z)
            wl.emit_ctx(D, 1, "cpu_idle", 1, c)
        self.hold[c] = None
        k.boot_clock.unpin()

    def gone(self, ts: int, cpu: int, tid: int, tgid: int, status: int) -> None:
        """The tracer lost the thread for good (reaped): it is freed."""
        t = self.threads.pop(tid, None)
        if t is None:
            return
        if not t.exited:
            self.exit(ts, cpu, tid, tgid, status, True)
        self._at(ts, cpu)
        self._free(t)
        if not any(o.task.tgid == tgid for o in self.threads.values()):
            self.groups.pop(tgid, None)
        self.wl.k.boot_clock.unpin()

    def _free(self, t: Traced) -> None:
        """delayed_put_task_struct(): sched_process_free in an RCU callback (softirq)."""
        wl = self.wl
        sched = wl.k.sched
        saved = sched.current, sched.irq_flags, sched.preempt_count
        if saved[0] is t.task:
            sched.current = sched.idle[sched.cpu]
        wl.process.exit(t.task)
        wl.sched.traced.discard(t.task.pid)
        sched.current, sched.irq_flags, sched.preempt_count = saved
        if sched.current is t.task:
            sched.current = sched.idle[sched.cpu]

    # ------------------------------------------------------------------ signals
    def signal(self, ts: int, cpu: int, tid: int, tgid: int, signo: int, errno: int, code: int,
               pid: int, uid: int) -> None:
        """get_signal() is about to deliver ``signo``: signal_deliver with the action the
        task installed (rt_sigaction), as the kernel prints it."""
        t = self.threads.get(tid)
        if t is None:
            return
        self._at(ts, cpu)
        self._run(t, cpu)
        g = self.groups.get(tgid)
        handler, flags = g.handlers.get(signo, (SIG_DFL, 0)) if g is not None else (SIG_DFL, 0)
        self.wl.emit_ctx(D, 1, "signal_deliver", signo, errno, code, handler, flags)
        self.wl.k.boot_clock.unpin()

    # ------------------------------------------------------------------ syscalls
    def sys_enter(self, ts: int, cpu: int, tid: int, tgid: int, nr: int,
                  args: tuple[int, ...], caps: dict[int, bytes]) -> None:
        """A syscall's entry: its entry path runs now, its exit comes later."""
        t = self._thread(tid, tgid)
        sc = self.table.by_nr.get(nr)
        if sc is None:
            return
        wl = self.wl
        k = wl.k
        if t.pending is not None:   # its exit was never seen (the task was interrupted)
            self._close(t, ts, cpu, -4)
        self._at(ts, cpu)
        self._run(t, cpu)
        if t.forked_by is not None:
            self._ret_from_fork(t)
        g = self.groups[tgid]
        fname, count = self._file_of(g, sc, args, caps)
        k.mem.set_user_view(tgid, caps_at(args, caps))
        ctx = wl.syscalls.enter(sc, args, caps, fname, count)
        c = cpu % k.nr_cpus
        t.pending = Pending(sc, args, ts, c, ctx)
        self._note_enter(t, g, sc, args, caps)
        if sc.name in MAY_SLEEP:
            self.hold[c] = ts
        k.boot_clock.unpin()

    def sys_exit(self, ts: int, cpu: int, tid: int, tgid: int, nr: int, ret: int) -> None:
        t = self.threads.get(tid)
        sc = self.table.by_nr.get(nr)
        if t is None or sc is None:
            return
        p = t.pending
        if p is None or p.sc.nr != nr:
            # entered before the tracer reported syscalls (or a child's first return)
            self._at(ts, cpu)
            self._run(t, cpu)
            if t.forked_by is not None:
                self._ret_from_fork(t)
            else:
                self.wl.syscalls.exit(self._bare(sc), ret)
            self.wl.k.boot_clock.unpin()
            return
        self._close(t, ts, cpu, ret)

    def _close(self, t: Traced, ts: int, cpu: int, ret: int) -> None:
        """The pending syscall returns ``ret`` at ``ts``: asleep past BLOCK_NS, it slept."""
        p = t.pending
        assert p is not None
        wl = self.wl
        k = wl.k
        c = cpu % k.nr_cpus
        if not p.asleep and not p.served and p.sc.name in MAY_SLEEP and ts - p.t0 > BLOCK_NS:
            self._sleep(t, p)
        self.hold[p.cpu] = None
        if p.asleep:
            self._at(ts - SLEEP_STEP, c)
            self._run(t, c)          # woken and switched back in
        else:
            # a syscall that did not sleep took the time of its path, not of the ptrace
            # round trip: its return follows its entry, in the task (another one, a
            # child it forked, may have run on the CPU meanwhile)
            self._at(p.t0, c)
            self._run(t, c)
        t.pending = None
        g = self.groups.get(t.task.tgid)
        if g is not None:
            self._note_exit(t, g, p, ret)
        wl.syscalls.exit(p.ctx, ret)
        # the user memory stays readable through the exit path: an eprobe or a synthetic
        # event of sys_exit fetches the pathname the call passed
        k.mem.set_user_view(t.task.tgid, None)
        k.boot_clock.unpin()

    def _bare(self, sc: Syscall) -> SyscallCtx:
        """A syscall whose entry was not seen: its exit alone."""
        return SyscallCtx(sc, (0,) * 6, {}, self.wl.k.sched.current, "", [])

    # ------------------------------------------------------------------ requests to the mount
    # The adapter's side: a FUSE request of a traced task runs inside the syscall that
    # made it (its entry was processed before the request: the tracer writes a stop's
    # records before it resumes the task), at the time the server handles it.  The time a
    # served syscall took is the FUSE round trip, not a sleep: it sleeps only where the
    # request blocks (a trace_pipe read waiting for data).

    def request_enter(self, tid: int, cpu: int) -> SyscallCtx | None:
        """A request of traced ``tid`` starts now: the task runs on the CPU of its pending
        syscall (``cpu``, the adapter's reading, without one: lifecycle mode reports
        none) and the request's work runs inside that syscall, whose context it returns
        (None: no syscall reported; the task is current all the same, so what the
        request records, a trace_marker write, is the task's)."""
        t = self.threads[tid]
        wl = self.wl
        k = wl.k
        p = t.pending
        if p is not None:
            p.served = True
            cpu = p.cpu
            self.hold[cpu] = None       # the task runs there: the CPU is not idle
        wl.catch_up()
        self._run(t, cpu)
        task = t.task
        if k.trace.cmdline_ref:
            k.trace.record_task(task)
        for hook in k.syscall_hooks:
            hook(task)
        return p.ctx if p is not None else None

    def request_block(self, tid: int) -> None:
        """The request waits (``WOULD_BLOCK``): the task sleeps in its syscall now, its
        CPU goes idle."""
        t = self.threads.get(tid)
        if t is None or t.cpu < 0:
            return
        wl = self.wl
        sched = wl.k.sched
        wl.catch_up()
        c = t.cpu
        if t.pending is not None:
            t.pending.asleep = True
        if sched.curr[c] is t.task:
            sched.run_on(c)
            wl.sched.switch(c, sched.idle[c], prev_state=STATE_S)
            wl.emit_ctx(D, 1, "cpu_idle", 1, c)
        wl.sched.asleep.add(tid)
        sched.set_current(c, sched.idle[c])

    def request_wake(self, tid: int) -> None:
        """What the request waited for came (the wait queue was woken): ``sched_wakeup``
        of the task now; the next ``request_enter`` switches it in."""
        t = self.threads.get(tid)
        wl = self.wl
        if t is None or t.cpu < 0 or tid not in wl.sched.asleep:
            return
        wl.catch_up()
        wl.sched.wakeup(t.cpu, t.task)

    def request_exit(self, tid: int) -> None:
        """The request is answered: the task stays in its syscall (its exit is the
        tracer's ``SYS_EXIT``)."""
        sched = self.wl.k.sched
        sched.irq_flags = 0
        sched.preempt_count = 0

    # ------------------------------------------------------------------ what syscalls change
    def _file_of(self, g: Group, sc: Syscall, args: tuple[int, ...], caps: dict[int, bytes]
                 ) -> tuple[str, int]:
        """The file a syscall works on (its fd's or its path's last component) and its
        byte count, for the probes on its path."""
        name = ""
        count = 0
        for i, a in enumerate(sc.args):
            if a.name in ("fd", "fd_in", "oldfd") and i < len(args):
                name = g.fds.get(args[i] & 0xFFFFFFFF, "")
            elif i in caps and a.type.endswith("char *") and a.name in PATH_ARGS:
                name = caps[i].decode("utf-8", "surrogateescape").rpartition("/")[2]
            elif a.name in ("count", "len") and i < len(args):
                count = args[i]
        return name, count

    def _note_enter(self, t: Traced, g: Group, sc: Syscall, args: tuple[int, ...],
                    caps: dict[int, bytes]) -> None:
        name = sc.name
        if name == "rt_sigaction" and 1 in caps and len(caps[1]) >= SIGACTION.size:
            handler, flags = SIGACTION.unpack_from(caps[1])
            g.handlers[args[0]] = (handler, flags & 0xFFFFFFFF)
        elif name in KILL_SYSCALLS:
            pid_i, sig_i = KILL_SYSCALLS[name]
            self._generate(int(to_signed(args[pid_i])), args[sig_i], name != "kill")
        elif name in OPEN_SYSCALLS:
            i = 1 if name in ("openat", "openat2") else 0
            path = caps.get(i, b"").decode("utf-8", "surrogateescape")
            self._open_path[t.task.pid] = path.rpartition("/")[2]

    def _note_exit(self, t: Traced, g: Group, p: Pending, ret: int) -> None:
        name = p.sc.name
        if ret < 0:
            return
        if name in OPEN_SYSCALLS:
            g.fds[ret] = self._open_path.pop(t.task.pid, "")
        elif name == "close":
            g.fds.pop(p.args[0] & 0xFFFFFFFF, None)
        elif name in ("dup", "dup2", "dup3"):
            g.fds[ret] = g.fds.get(p.args[0] & 0xFFFFFFFF, "")

    def _generate(self, target: int, sig: int, thread: bool) -> None:
        """__send_signal_locked() for a signal a traced task sends to a traced target."""
        if sig == 0:
            return
        dst = self.threads.get(abs(target))
        if dst is None:
            return
        self.wl.emit_ctx(D, 2, "signal_generate", sig, 0, SI_USER, dst.task.comm, dst.task.pid,
                         0 if thread else 1, TRACE_SIGNAL_DELIVERED)


PATH_ARGS = frozenset(("filename", "pathname", "path", "oldname", "newname", "name",
                       "specialfile", "library"))


def to_signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def caps_at(args: tuple[int, ...], caps: dict[int, bytes]) -> dict[int, bytes]:
    """The captured user memory of a syscall as address -> bytes (C strings get their
    NUL back), what ``+0($arg2):ustring`` reads on the way."""
    out: dict[int, bytes] = {}
    for i, data in caps.items():
        if i < len(args) and args[i]:
            out[args[i]] = data + b"\0"
    return out


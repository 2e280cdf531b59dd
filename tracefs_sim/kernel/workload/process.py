"""Process life (kernel/fork.c, fs/exec.c, kernel/exit.c) of the simulated tasks and of
traced host tasks.

Simulated tasks: clone with copy_process and the child's first wakeup, execve with the
comm change and the dynamic loader's syscalls, exit with the parent's SIGCHLD, and the
task's release.

Traced host tasks: the bodies of clone/clone3/fork/vfork (kernel_clone: the events of
copy_process come with the tracer's NEW_TASK), execve/execveat (the exec events come with
its EXEC), exit/exit_group (do_exit's events with its EXIT), wait4/waitid (do_wait:
sched_process_wait at the start, the child reaped when the wait returns it), and the
paths those records run: copy_process's events in the parent, a vfork parent's wait
until its child execs or exits, begin_new_exec's events, do_exit (the vfork parent
woken, sched_process_exit, the parent's SIGCHLD and wakeup, the last switch as a zombie
or dead), release_task (sched_process_free in an RCU callback on a later tick).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..sched import TASK_COMM_LEN, TRACE_FLAG_SOFTIRQ, Task
from .defs import (
    CLD_EXITED,
    CLONE_FLAGS,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    GFP_ZERO,
    SIGCHLD,
    STATE_D,
    STATE_S,
    STATE_Z,
    T_ASLEEP,
    T_DEAD,
    D,
)
from .signal import SA_NOCLDWAIT, SIG_IGN, TRACE_SIGNAL_IGNORED
from .syscall_define import SyscallDefines
from .syscalls import LIB_DIR, LIBS, SyscallCtx, arg_int

if TYPE_CHECKING:
    from . import Workload
    from .traced import Proc, Thread

CSIGNAL = 0xFF
CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
STATE_X = 0x10                  # EXIT_DEAD: an autoreaped task's last switch
CLD_KILLED, CLD_DUMPED = 2, 3
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
WNOHANG, WNOWAIT = 0x1, 0x01000000
NR_FORK = {1: "fork", 2: "vfork", 3: "clone"}   # NEW_TASK's event -> the syscall it came from
OOM_SCORE_ADJ = 0
TASK_STRUCTS = 0xFFFF888105000000               # task_structs: base + pid * 0x3400
CLONE_ARGS_EXIT_SIGNAL = 32                     # offsetof(struct clone_args, exit_signal)


def task_struct(pid: int) -> int:
    """The address of task ``pid``'s task_struct."""
    return TASK_STRUCTS + (pid & 0xFFFF) * 0x3400


def child_code(status: int) -> int:
    """The si_code of the SIGCHLD an end with wait status ``status`` sends."""
    if status & 0x7F == 0:
        return CLD_EXITED
    return CLD_DUMPED if status & 0x80 else CLD_KILLED


class Process:
    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.SYSCALLS.register(wl.syscalls, self)

    def clone(self, cpu: int, parent: Task, child: Task, flags: int = CLONE_FLAGS,
              target: int | None = None) -> None:
        """clone(): copy_process() and the new task's first wakeup, in ``parent``."""
        wl = self.wl
        frames = wl.syscalls.begin("clone", (flags, 0, 0, 0x7F3A5C1D5A10, 0))
        wl.slab.cache_alloc("task_struct", "copy_process")
        wl.itimers.copy_signal(child)
        wl.entry.fork(parent, child, flags, cpu)
        wl.emit("task_newtask", child.pid, child.comm, flags, 0)
        self.fork(parent, child)
        wake = wl.sites.enter_chain(("wake_up_new_task",), "kernel_clone")
        wl.sched.wakeup_new(cpu if target is None else target, child)
        wl.sites.leave_chain(wake)
        wl.syscalls.end("clone", frames, ret=child.pid)

    def execve(self, task: Task, comm: str, path: str) -> None:
        """execve() in ``task``: a new mm, the comm change, the exec event."""
        wl = self.wl
        frames = wl.syscalls.begin("execve", name=path)
        bprm = wl.slab.kmalloc("alloc_bprm", 432, GFP_KERNEL | GFP_ZERO)
        wl.slab.cache_alloc("mm_struct", "mm_alloc")
        wl.emit("sched_prepare_exec", path, path, task.pid, task.comm)
        old = task.comm
        task.comm = comm[:15]
        wl.emit_ctx(0, 1, "task_rename", task.pid, old, task.comm, 0)
        wl.emit("sched_process_exec", path, task.pid, task.pid)
        wl.slab.kfree("free_bprm", bprm)
        wl.syscalls.end("execve", frames, ret=0)
        for _ in range(2):   # the first page faults of the new image
            wl.slab.page_alloc(GFP_HIGHUSER_MOVABLE | GFP_ZERO)
        self.load_libraries(task.comm)

    def load_libraries(self, comm: str) -> None:
        """What glibc's ld.so does in a new dynamically linked image before main():
        ld.so.preload, ld.so.cache, then each library's ELF header (read), program
        headers (pread64), fstat and mappings."""
        wl = self.wl
        if wl.quiet():
            return
        wl.syscalls.syscall("access", path="/etc/ld.so.preload")
        wl.syscalls.syscall("openat", path="/etc/ld.so.cache")
        wl.syscalls.syscall("fstat", name="ld.so.cache")
        wl.syscalls.syscall("mmap", name="ld.so.cache")
        wl.syscalls.syscall("close", name="ld.so.cache")
        for lib in LIBS.get(comm, ("libc.so.6",)):
            wl.syscalls.syscall("openat", path=f"{LIB_DIR}/{lib}")
            wl.syscalls.syscall("read", name=lib, count=832)
            libc = lib.startswith("libc.")
            if libc:   # the PT_NOTE/PT_GNU_PROPERTY segments, read again by offset
                wl.syscalls.syscall("pread64", name=lib, count=784)
            wl.syscalls.syscall("fstat", name=lib)
            if libc:
                wl.syscalls.syscall("pread64", name=lib, count=784)
            wl.syscalls.syscall("mmap", name=lib)
            wl.syscalls.syscall("mmap", name=lib)
            wl.syscalls.syscall("close", name=lib)

    def exit_task(self, cpu: int, task: Task, parent: Task | None = None) -> None:
        """exit_group() in ``task`` (current on ``cpu``): do_exit(), the parent's
        SIGCHLD and wakeup, the last switch (to the parent when it was woken here)."""
        wl = self.wl
        frames = wl.syscalls.begin("exit_group")
        wl.emit("sched_process_exit", task.comm, task.pid, task.prio)
        if parent is not None:
            for c, t in enumerate(wl.sched.host):
                if t is parent:            # it was blocked in wait4() all along
                    wl.sched.host_off(c, STATE_S)
                    wl.k.sched.set_current(cpu, task)
            wl.emit_ctx(D, 2, "signal_generate", SIGCHLD, 0, CLD_EXITED, parent.comm, parent.pid, 1, 0)
            wl.sched.wakeup(cpu, parent)
        wl.sites.leave_chain(frames)
        nxt = parent if parent is not None and wl.sched.task_cpu.get(parent.pid) == cpu \
            else wl.k.sched.idle[cpu]
        if wl.sched.host[cpu] is task:
            wl.sched.host[cpu] = None
        wl.sched.switch(cpu, nxt, prev_state=STATE_Z)

    def fork(self, parent: Task, child: Task) -> None:
        """copy_process(): fork tracepoint and the pid-list follow-fork hooks."""
        wl = self.wl
        k = wl.k
        wl.emit("sched_process_fork", parent.comm, parent.pid, child.comm, child.pid)
        for tr in k.trace.all_arrays():
            k.ftrace.sched_process_fork(tr, parent, child)
        k.events.on_fork(parent.pid, child.pid)

    def exit(self, task: Task) -> None:
        """delayed_put_task_struct(): sched_process_free (an RCU callback) and the
        pid-list hooks registered on it.  (A pid the host reused meanwhile has a new
        task object: it stays.)"""
        wl = self.wl
        k = wl.k
        sched = k.sched
        saved = sched.irq_flags, sched.preempt_count
        sched.irq_flags, sched.preempt_count = TRACE_FLAG_SOFTIRQ, wl.base_depth()
        wl.emit("sched_process_free", task.comm, task.pid, task.prio)
        sched.irq_flags, sched.preempt_count = saved
        for tr in k.trace.all_arrays():
            k.ftrace.sched_process_free(tr, task)
        k.events.on_exit(task.pid)
        wl.sites.forget(id(task))
        if k.sched.tasks.get(task.pid) is task:
            wl.sched.forget(task)
            del k.sched.tasks[task.pid]


    # ------------------------------------------------------------------ traced: fork
    @SYSCALLS.enter("clone", "clone3", "fork", "vfork")
    def _kernel_clone(self, ctx: SyscallCtx) -> None:
        """clone/clone3/fork/vfork() → kernel_clone(&args): copy_process() comes with
        the tracer's NEW_TASK (traced_fork)."""
        ctx.regs["kernel_clone"] = (ctx.frame + 0x40,)
        self.wl.syscalls.open(ctx, "kernel_clone")

    def traced_fork(self, parent: Thread, tid: int, tgid: int, event: int, flags: int,
                    comm: str, cpu: int) -> None:
        """copy_process() in ``parent`` made ``tid``: task_newtask (the clone flags without
        the exit signal), sched_process_fork and the pid-list hooks, wake_up_new_task()'s
        sched_wakeup_new; a vfork parent then waits (D) for the child's exec or exit."""
        wl = self.wl
        tr = wl.traced
        s = wl.syscalls
        p = parent.pending
        ctx = p.ctx if p is not None and p.ctx.sc.name in ("clone", "clone3", "fork", "vfork") else None
        exit_signal = flags & CSIGNAL
        if ctx is not None:
            if ctx.ret is None:
                ctx.ret = tid
            if ctx.entered and not ctx.ran:
                tr.run_path(parent)
            if ctx.sc.name == "clone3":
                raw = ctx.caps.get(0, b"")
                if len(raw) >= CLONE_ARGS_EXIT_SIGNAL + 8:
                    exit_signal = struct.unpack_from("<Q", raw, CLONE_ARGS_EXIT_SIGNAL)[0] & CSIGNAL
        child = tr.new_thread(parent, tid, tgid, flags, comm, cpu)
        if child.proc is not parent.proc:
            child.proc.exit_signal = exit_signal
        child.first_return = ctx.sc if ctx is not None else tr.table.by_name[NR_FORK.get(event, "clone")]
        clone_flags = flags & ~CSIGNAL
        task = child.task
        if ctx is not None:
            ctx.regs["copy_process"] = (0, 0, 0xFFFFFFFF, ctx.frame + 0x40)
            ctx.rets["copy_process"] = task_struct(tid)
            s.open(ctx, "copy_process")
        wl.slab.cache_alloc("task_struct", "copy_process", task_struct(tid))
        if child.proc is not parent.proc:
            wl.itimers.copy_signal(task)
        wl.mm.copy_process(parent, child, clone_flags)
        if not clone_flags & CLONE_VM:
            # dup_mm(): the new page tables' NR_PAGETABLE charge updates the memcg's stats
            wl.background.cgroup.updated(wl.k.sched.cpu)
        wl.entry.fork(parent.task, task, clone_flags, parent.cpu)
        wl.emit("task_newtask", tid, task.comm, clone_flags, OOM_SCORE_ADJ)
        if ctx is not None:
            s.close(ctx, 1)
        self.fork(parent.task, task)
        if ctx is not None:
            ctx.regs["wake_up_new_task"] = (task_struct(tid),)
            s.open(ctx, "wake_up_new_task")
        wl.sched.wakeup_new(cpu, task)
        if ctx is not None:
            s.close(ctx, 1)
        if clone_flags & CLONE_VFORK and child.proc is not parent.proc:
            # wait_for_vfork_done(): TASK_KILLABLE until the child's mm is released
            child.proc.vfork_parent = parent
            if ctx is not None:
                ctx.regs["wait_for_completion_state"] = (ctx.frame + 0x80, 0x2102)
                s.open(ctx, "wait_for_completion_state")
            tr.sleep(parent, STATE_D)

    def vfork_done(self, proc: Proc) -> None:
        """complete_vfork_done() (mm_release(), in the child's exec or exit): the vfork
        parent wakes, in the child's context."""
        parent = proc.vfork_parent
        proc.vfork_parent = None
        if parent is None or parent.state == T_DEAD:
            return
        tr = self.wl.traced
        tr.ensure_asleep(parent)
        if parent.state == T_ASLEEP:
            self.wl.sites.call(("complete", "try_to_wake_up"))
            tr.wake(parent, self.wl.k.sched.cpu, locks=2)     # task_lock, the completion's

    # ------------------------------------------------------------------ traced: exec
    @SYSCALLS.enter("execve", "execveat")
    def _execve(self, ctx: SyscallCtx) -> None:
        """execve/execveat() → do_execveat_common(): alloc_bprm() opens the file; when
        it can run, bprm_execve() → load_elf_binary() → begin_new_exec(), where the
        exec events come with the tracer's EXEC (traced_exec)."""
        wl = self.wl
        s = wl.syscalls
        i = 1 if ctx.sc.name == "execveat" else 0
        dfd = ctx.args[0] & 0xFFFFFFFF if i else 0xFFFFFF9C
        name = wl.fs.getname(ctx, i)
        bprm = ctx.frame + 0x200
        ctx.regs["alloc_bprm"] = (dfd, name, 0)
        ctx.rets["alloc_bprm"] = bprm if ctx.ret is None or ctx.ret >= 0 else (ctx.ret & 0xFFFFFFFFFFFFFFFF)
        s.call(ctx, ("alloc_bprm", ("do_open_execat", ("do_filp_open", ("path_openat", "vfs_open")))))
        wl.slab.kmalloc("alloc_bprm", 432, GFP_KERNEL | GFP_ZERO)
        if ctx.ret is not None and ctx.ret < 0:
            return
        wl.mm.bprm_mm_init(ctx.thread, ctx)
        ctx.regs["bprm_execve"] = (bprm,)
        ctx.regs["load_elf_binary"] = (bprm,)
        ctx.regs["begin_new_exec"] = (bprm,)
        ctx.rets["bprm_execve"] = ctx.rets["load_elf_binary"] = ctx.rets["begin_new_exec"] = 0
        s.open(ctx, "bprm_execve", "load_elf_binary", "begin_new_exec")

    def _exec_ctx(self, t: Thread) -> SyscallCtx | None:
        p = t.pending
        return p.ctx if p is not None and p.ctx.sc.name in ("execve", "execveat") else None

    def prepare_exec(self, t: Thread, filename: str, interp: str) -> None:
        """begin_new_exec() in ``t``, at its point of no return: sched_prepare_exec (the
        task still as it was: its pid, its comm), before de_thread()."""
        wl = self.wl
        ctx = self._exec_ctx(t)
        if ctx is not None:
            if ctx.ret is None:
                ctx.ret = 0
            if ctx.entered and not ctx.ran:
                wl.traced.run_path(t)
        wl.emit("sched_prepare_exec", interp, filename, t.task.pid, t.task.comm)

    def traced_exec(self, t: Thread, old_tid: int, comm: str, filename: str) -> None:
        """The rest of the exec in ``t`` (``old_tid`` before a non-leader's exec): the vfork
        parent woken by exec_mmap(), the comm, the CLOEXEC files closed, handlers reset,
        then exec_binprm()'s sched_process_exec."""
        wl = self.wl
        s = wl.syscalls
        ctx = self._exec_ctx(t)
        task = t.task
        proc = t.proc
        self.vfork_done(proc)
        wl.mm.exec_mmap(t)
        self.rename(task, comm[:TASK_COMM_LEN - 1])
        wl.entry.exec(task)
        wl.background.cgroup.updated(wl.k.sched.cpu)    # the new mm's page tables
        wl.fs.release_files(t, proc.files.exec())
        proc.sig.exec()
        wl.mm.load_image(t, filename)
        if ctx is not None:
            s.close_to(ctx, "bprm_execve")
        wl.emit("sched_process_exec", filename, task.pid, old_tid)

    def prctl_set_name(self, task: Task, comm: str) -> None:
        """prctl(PR_SET_NAME) of a host task the adapter saw rename itself (or a write
        to its /proc/PID/comm: the host does not say which): the LSMs' task_prctl hooks
        (capability, then Yama, as CONFIG_LSM orders them; both pass PR_SET_NAME on),
        set_task_comm() → __set_task_comm() with task_rename under task_lock() and
        perf_event_comm(), then the proc connector's comm event."""
        wl = self.wl
        frames = wl.syscalls.begin("prctl")
        call = wl.sites.enter_chain(("__set_task_comm",), "__x64_sys_prctl")
        wl.sites.call("_raw_spin_lock", "__set_task_comm")     # task_lock()
        self.rename(task, comm[:TASK_COMM_LEN - 1])
        wl.sites.call("_raw_spin_unlock", "__set_task_comm")
        wl.sites.call("perf_event_comm", "__set_task_comm")
        wl.sites.leave_chain(call)
        wl.sites.call("proc_comm_connector", "__x64_sys_prctl")
        wl.syscalls.end("prctl", frames, ret=0)

    def rename(self, task: Task, comm: str) -> None:
        """__set_task_comm(): task_rename (under task_lock), also when the comm stays
        what it was (an exec of the same program)."""
        wl = self.wl
        wl.emit_ctx(0, 1, "task_rename", task.pid, task.comm, comm, OOM_SCORE_ADJ)
        task.comm = comm
        wl.k.trace.record_task(task)

    # ------------------------------------------------------------------ traced: exit
    @SYSCALLS.enter("exit")
    def _exit(self, ctx: SyscallCtx) -> None:
        ctx.regs["do_exit"] = (arg_int(ctx.args[0]) << 8 & 0xFF00,)
        self.wl.syscalls.open(ctx, "do_exit")

    @SYSCALLS.enter("exit_group")
    def _exit_group(self, ctx: SyscallCtx) -> None:
        code = arg_int(ctx.args[0]) << 8 & 0xFF00
        ctx.regs["do_group_exit"] = (code,)
        ctx.regs["do_exit"] = (code,)
        self.wl.syscalls.open(ctx, "do_group_exit", "do_exit")

    def traced_exit(self, t: Thread, status: int) -> None:
        """do_exit() of ``t``: exit_mm() (a vfork parent wakes), sched_process_exit,
        exit_files(), exit_notify() (the parent's SIGCHLD and wakeup when the group is
        dead), do_task_dead() (Z, or X when nobody will wait for it)."""
        wl = self.wl
        tr = wl.traced
        task = t.task
        proc = t.proc
        t.exit_status = status
        if task.pid == proc.tgid:
            self.vfork_done(proc)
        others = [o for o in proc.threads.values() if o is not t and o.state != T_DEAD]
        if not others:
            wl.itimers.exit(proc)           # the group is dead: its real_timer cancelled
        wl.mm.exit_mm(t)
        wl.emit("sched_process_exit", task.comm, task.pid, task.prio)
        if not others:
            wl.fs.exit_files(t)
        wl.entry.exit(task, t.cpu if t.cpu >= 0 else wl.k.sched.cpu)
        leader = task.pid == proc.tgid
        state = STATE_Z
        cpu = t.cpu
        if not others:
            self._orphans(proc)
        if leader:
            if not others and self.notify_parent(proc, t):
                state = STATE_X
        else:
            state = STATE_X             # a thread is released at once
            lead = proc.threads.get(proc.tgid)
            if not others and lead is not None and lead.state == T_DEAD:
                self.notify_parent(proc, lead)
        tr.switch_dead(t, state)
        if state == STATE_X and not leader:
            self.release(task, cpu)

    def notify_parent(self, proc: Proc, leader: Thread) -> bool:
        """do_notify_parent(): SIGCHLD to the parent (unless it ignores SIGCHLD: then the
        child is reaped at once) and __wake_up_parent() of its threads waiting for this
        child.  Returns True when the child is autoreaped."""
        wl = self.wl
        tr = wl.traced
        sig = proc.exit_signal
        code = child_code(leader.exit_status)
        parent = proc.parent
        autoreap = False
        if parent is not None and parent.live():
            handler, flags = parent.sig.action(SIGCHLD)
            if handler == SIG_IGN or flags & SA_NOCLDWAIT:
                autoreap = True
                if handler == SIG_IGN:
                    sig = 0
            if sig:
                wl.signals.generate(sig, 0, code, parent, None, 2)
            for w in parent.live():
                if w.pending is not None and self._waits_for(w.pending.ctx, proc):
                    tr.ensure_asleep(w)
                    if w.state == T_ASLEEP:
                        # tasklist_lock, the parent's siglock, wait_chldexit's lock
                        tr.wake(w, wl.k.sched.cpu, locks=3)
        elif proc.outside_parent is not None and sig:
            pid, comm = proc.outside_parent
            # an untraced parent (the tracer): its SIGCHLD is the default, ignored
            wl.signals.generate_outside(sig, 0, code, pid, comm, True, TRACE_SIGNAL_IGNORED, 2)
        if autoreap:
            self.reap(proc, leader.cpu)
        else:
            proc.zombie = True
        return autoreap

    def _waits_for(self, ctx: SyscallCtx, proc: Proc) -> bool:
        """Does the wait4/waitid in progress accept ``proc``'s end?"""
        name = ctx.sc.name
        if name == "wait4":
            upid = arg_int(ctx.args[0])
            if upid > 0:
                return upid == proc.tgid
            if upid == 0:
                return proc.pgid == ctx.thread.proc.pgid
            return upid == -1 or proc.pgid == -upid
        if name == "waitid":
            which, upid = arg_int(ctx.args[0]), arg_int(ctx.args[1])
            return which == P_ALL or (which == P_PID and upid == proc.tgid) or \
                (which == P_PGID and proc.pgid == (upid or ctx.thread.proc.pgid))
        return False

    def _orphans(self, proc: Proc) -> None:
        """forget_original_parent(): the children of a dead group go to a reaper the
        model does not trace; its zombies are reaped."""
        for child in proc.children:
            child.parent = None
            if child.zombie and not child.released:
                self.reap(child, self.wl.k.sched.cpu)
        proc.children = []

    def release(self, task: Task, cpu: int) -> None:
        """release_task() → call_rcu(delayed_put_task_struct): freed on a later tick."""
        self.wl.call_rcu(cpu, lambda: self.exit(task))

    def reap(self, proc: Proc, cpu: int) -> None:
        """The group's leader is reaped (wait_task_zombie() or autoreap): released."""
        if proc.released:
            return
        proc.released = True
        proc.zombie = False
        leader = proc.leader
        if leader is not None:
            self.release(leader, cpu)
        tr = self.wl.traced
        if proc.parent is not None and proc in proc.parent.children:
            proc.parent.children.remove(proc)
        if not proc.threads and tr.procs.get(proc.tgid) is proc:
            del tr.procs[proc.tgid]

    # ------------------------------------------------------------------ traced: wait
    @SYSCALLS.enter("wait4")
    def _wait4(self, ctx: SyscallCtx) -> None:
        """wait4() → kernel_wait4(upid, stat_addr, options, ru) → do_wait(): the
        sched_process_wait event (the pid waited for: 0 for any child)."""
        upid = arg_int(ctx.args[0])
        pid = upid if upid > 0 else 0 if upid == -1 else -upid if upid < -1 else ctx.thread.proc.pgid
        ctx.regs["kernel_wait4"] = (ctx.args[0] & 0xFFFFFFFF, ctx.args[1], ctx.args[2] & 0xFFFFFFFF,
                                    ctx.args[3])
        self.wl.syscalls.open(ctx, "kernel_wait4")
        self._do_wait(ctx, pid)

    @SYSCALLS.enter("waitid")
    def _waitid(self, ctx: SyscallCtx) -> None:
        which, upid = arg_int(ctx.args[0]), arg_int(ctx.args[1])
        pid = upid if which == P_PID else (upid or ctx.thread.proc.pgid) if which == P_PGID else 0
        ctx.regs["kernel_waitid"] = (which, upid & 0xFFFFFFFF, ctx.args[2], ctx.args[3] & 0xFFFFFFFF,
                                     ctx.args[4])
        self.wl.syscalls.open(ctx, "kernel_waitid")
        self._do_wait(ctx, pid)

    def _do_wait(self, ctx: SyscallCtx, pid: int) -> None:
        wl = self.wl
        ctx.regs["do_wait"] = (ctx.frame + 0x40,)
        wl.syscalls.open(ctx, "do_wait")
        task = ctx.thread.task
        wl.emit("sched_process_wait", task.comm, pid, task.prio)
        ctx.regs["__do_wait"] = (ctx.frame + 0x40,)
        wl.syscalls.call(ctx, "__do_wait")

    @SYSCALLS.exit("wait4", "waitid")
    def _wait_exit(self, ctx: SyscallCtx, ret: int) -> None:
        """The wait returned a child's end: wait_task_zombie() → release_task()."""
        if ret < 0:
            return
        pid = ret
        if ctx.sc.name == "waitid":
            raw = ctx.outs.get(2, b"")
            if len(raw) < 20 or arg_int(ctx.args[3]) & WNOWAIT:
                return
            code, pid = struct.unpack_from("<i", raw, 8)[0], struct.unpack_from("<i", raw, 16)[0]
            if code not in (CLD_EXITED, CLD_KILLED, CLD_DUMPED):
                return
        elif pid == 0:
            return
        proc = self.wl.traced.procs.get(pid)
        if proc is not None and proc.zombie:
            self.wl.syscalls.call(ctx, ("release_task",))
            self.reap(proc, self.wl.k.sched.cpu)

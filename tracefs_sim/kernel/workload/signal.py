"""Signals of traced host tasks (kernel/signal.c, arch/x86/kernel/signal.c): the
dispositions each process installed (rt_sigaction, inherited on fork, reset on exec),
the blocked masks (rt_sigprocmask), ``signal_generate`` where a traced task sends one
(kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo) or the kernel does for
something observed (SIGCHLD at a child's end, SIGPIPE of a write to a pipe nobody
reads), with the result an untraced kernel gives (a signal the target ignores is
dropped: ``res=1``), and ``signal_deliver`` at the tracer's delivery stop.

The tracer sees every signal a traced task gets, ignored ones included (a ptraced task
does not drop them early); an untraced kernel drops an ignored signal when it is sent,
so its delivery shows nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .defs import STATE_S, T_ASLEEP, T_STOPPED, D
from .syscall_define import SyscallDefines
from .syscalls import SyscallCtx, arg_int

if TYPE_CHECKING:
    from . import Workload
    from .traced import Proc, Thread

SIG_DFL, SIG_IGN = 0, 1
SIGKILL, SIGPIPE, SIGCHLD, SIGCONT, SIGSTOP = 9, 13, 17, 18, 19
STOP_SIGNALS = frozenset((19, 20, 21, 22))          # SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU
KERNEL_IGNORE = frozenset((SIGCHLD, SIGCONT, 23, 28))  # SIGURG, SIGWINCH: default "ignore"
SA_NOCLDWAIT = 0x2
SI_USER, SI_TKILL = 0, -6
TRACE_SIGNAL_DELIVERED, TRACE_SIGNAL_IGNORED, TRACE_SIGNAL_ALREADY_PENDING = 0, 1, 2
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
SIGACTION = struct.Struct("<QQ")                      # sa_handler, sa_flags (kernel layout)
SIGINFO_HEAD = struct.Struct("<iii")                  # si_signo, si_errno, si_code


def sigbit(sig: int) -> int:
    return 1 << (sig - 1)


@dataclass(slots=True, eq=False)
class SigState:
    """A sighand_struct (the dispositions, shared by CLONE_SIGHAND) and the signals
    pending for the process."""

    handlers: dict[int, tuple[int, int]] = field(default_factory=dict)  # sig -> (handler, flags)
    pending: set[int] = field(default_factory=set)

    def action(self, sig: int) -> tuple[int, int]:
        return self.handlers.get(sig, (SIG_DFL, 0))

    def ignores(self, sig: int) -> bool:
        """sig_handler_ignored()."""
        handler = self.action(sig)[0]
        return handler == SIG_IGN or (handler == SIG_DFL and sig in KERNEL_IGNORE)

    def ignore_mask(self, mask: int) -> None:
        """Signals ignored since before the model saw the process (SigIgn)."""
        for sig in range(1, 65):
            if mask & sigbit(sig):
                self.handlers[sig] = (SIG_IGN, 0)

    def copy(self) -> SigState:
        """copy_sighand()."""
        return SigState(dict(self.handlers))

    def exec(self) -> None:
        """flush_signal_handlers(): a handler becomes SIG_DFL, SIG_IGN stays; flags 0."""
        self.handlers = {s: (SIG_IGN, 0) for s, (h, _f) in self.handlers.items() if h == SIG_IGN}


class Signals:
    """The signal paths of traced tasks and the bodies of the signal syscalls."""

    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.SYSCALLS.register(wl.syscalls, self)

    # ------------------------------------------------------------------ generation
    def generate(self, sig: int, errno: int, code: int, proc: Proc, thread: Thread | None,
                 depth: int = 1) -> int:
        """__send_signal_locked() of ``sig`` to traced ``proc`` (to ``thread`` alone for
        tkill/tgkill), in the current context: signal_generate with the result an
        untraced kernel gives, and the wakeups it makes.  Returns the result."""
        wl = self.wl
        tr = wl.traced
        live = proc.live()
        if not live:
            return TRACE_SIGNAL_IGNORED
        target = thread or next((t for t in live if t.task.pid == proc.tgid), live[0])
        blocked = bool(target.blocked & sigbit(sig))
        if sig in (SIGCONT, SIGKILL):
            # prepare_signal(): SIGCONT (and SIGKILL) wake a stopped group
            for t in live:
                if t.state == T_STOPPED:
                    tr.wake(t, wl.k.sched.cpu, locks=depth)       # under the siglock
        if sig != SIGKILL and not blocked and proc.sig.ignores(sig):
            result = TRACE_SIGNAL_IGNORED
        elif sig < 32 and sig in proc.sig.pending:
            result = TRACE_SIGNAL_ALREADY_PENDING
        else:
            result = TRACE_SIGNAL_DELIVERED
            proc.sig.pending.add(sig)
        task = target.task
        wl.emit_ctx(D, depth, "signal_generate", sig, errno, code, task.comm, task.pid,
                    0 if thread is not None else 1, result)
        if result == TRACE_SIGNAL_DELIVERED and not blocked:
            # complete_signal() → signal_wake_up(): an interruptible sleep ends (a task
            # in a syscall that waits was asleep in it)
            if target.task is not wl.k.sched.current and tr.waiting(target):
                tr.ensure_asleep(target)
            if target.state == T_ASLEEP and (target.sleep_state == STATE_S or sig == SIGKILL):
                tr.wake(target, wl.k.sched.cpu, locks=depth)
        return result

    def generate_outside(self, sig: int, errno: int, code: int, pid: int, comm: str, group: bool,
                         result: int, depth: int = 1) -> None:
        """signal_generate for a target the model does not trace."""
        self.wl.emit_ctx(D, depth, "signal_generate", sig, errno, code, comm, pid, int(group),
                         result)

    def _send(self, ctx: SyscallCtx, pid: int, sig: int, code: int, errno: int, tgid: int,
              group: bool) -> None:
        """What a successful kill-family syscall sent (nothing for signal 0 or a
        failure): its signal_generate(s)."""
        if sig <= 0 or sig > 64 or (ctx.ret is not None and ctx.ret < 0):
            return
        tr = self.wl.traced
        if pid > 0 and pid not in (tr.procs if group else tr.threads):
            self._send_outside(pid, sig, errno, code, group)
            return
        if group:
            if pid > 0:
                procs = [p for p in (tr.procs.get(pid),) if p is not None]
                depth = 1
            else:
                pgid = ctx.thread.proc.pgid if pid == 0 else -pid
                procs = [p for p in tr.procs.values() if p.pgid == pgid and p.live()] if pid != -1 \
                    else [p for p in tr.procs.values() if p.live() and p is not ctx.thread.proc]
                depth = 2
            for proc in procs:
                self.generate(sig, errno, code, proc, None, depth)
            return
        t = tr.threads.get(pid)
        if t is not None and (tgid <= 0 or t.proc.tgid == tgid):
            self.generate(sig, errno, code, t.proc, t)

    def _send_outside(self, pid: int, sig: int, errno: int, code: int, group: bool) -> None:
        """A signal to a task the model does not trace (the host names it; its result is
        what its dispositions say)."""
        host = self.wl.traced.host
        comm = host.comm(pid)
        if comm is None:
            return
        ignored = sig != SIGKILL and bool(host.ignored_signals(pid) & sigbit(sig))
        self.generate_outside(sig, errno, code, pid, comm, group,
                              TRACE_SIGNAL_IGNORED if ignored else TRACE_SIGNAL_DELIVERED)

    @SYSCALLS.enter("kill")
    def _kill(self, ctx: SyscallCtx) -> None:
        """kill() → kill_something_info() → kill_pid_info_type() → group_send_sig_info()
        → do_send_sig_info() → send_signal_locked() (SI_USER)."""
        s = self.wl.syscalls
        pid, sig = arg_int(ctx.args[0]), arg_int(ctx.args[1])
        ctx.regs["kill_something_info"] = (sig, ctx.frame, pid & 0xFFFFFFFF)
        s.open(ctx, "kill_something_info")
        if pid > 0:
            s.open(ctx, "kill_pid_info", "kill_pid_info_type", "group_send_sig_info")
            if sig:
                s.open(ctx, "do_send_sig_info", "send_signal_locked", "__send_signal_locked")
        self._send(ctx, pid, sig, SI_USER, 0, 0, True)

    @SYSCALLS.enter("tkill")
    def _tkill(self, ctx: SyscallCtx) -> None:
        """tkill() → do_tkill() → do_send_specific() (SI_TKILL, to one thread)."""
        self._specific(ctx, 0, arg_int(ctx.args[0]), arg_int(ctx.args[1]), SI_TKILL, 0)

    @SYSCALLS.enter("tgkill")
    def _tgkill(self, ctx: SyscallCtx) -> None:
        self._specific(ctx, arg_int(ctx.args[0]), arg_int(ctx.args[1]), arg_int(ctx.args[2]),
                       SI_TKILL, 0)

    def _specific(self, ctx: SyscallCtx, tgid: int, pid: int, sig: int, code: int,
                  errno: int) -> None:
        s = self.wl.syscalls
        ctx.regs["do_send_specific"] = (tgid & 0xFFFFFFFF, pid & 0xFFFFFFFF, sig, ctx.frame)
        s.open(ctx, "do_send_specific")
        if sig:
            s.open(ctx, "do_send_sig_info", "send_signal_locked", "__send_signal_locked")
        self._send(ctx, pid, sig, code, errno, tgid, False)

    def _info(self, ctx: SyscallCtx, i: int) -> tuple[int, int]:
        """(si_code, si_errno) of the siginfo a sigqueueinfo call passes."""
        raw = ctx.caps.get(i, b"")
        if len(raw) < SIGINFO_HEAD.size:
            return SI_USER, 0
        _signo, errno, code = SIGINFO_HEAD.unpack_from(raw)
        return code, errno

    @SYSCALLS.enter("rt_sigqueueinfo")
    def _sigqueueinfo(self, ctx: SyscallCtx) -> None:
        pid, sig = arg_int(ctx.args[0]), arg_int(ctx.args[1])
        code, errno = self._info(ctx, 2)
        s = self.wl.syscalls
        s.open(ctx, "kill_pid_info", "kill_pid_info_type", "group_send_sig_info")
        self._send(ctx, pid, sig, code, errno, 0, True)

    @SYSCALLS.enter("rt_tgsigqueueinfo")
    def _tgsigqueueinfo(self, ctx: SyscallCtx) -> None:
        code, errno = self._info(ctx, 3)
        self._specific(ctx, arg_int(ctx.args[0]), arg_int(ctx.args[1]), arg_int(ctx.args[2]),
                       code, errno)

    # ------------------------------------------------------------------ dispositions
    @SYSCALLS.enter("rt_sigaction")
    def _sigaction_enter(self, ctx: SyscallCtx) -> None:
        """rt_sigaction() → do_sigaction(sig, act ? &new_ka : NULL, oact ? &old_ka : NULL)."""
        sig = arg_int(ctx.args[0])
        frame = ctx.frame
        ctx.regs["do_sigaction"] = (sig, frame if ctx.args[1] else 0, frame + 0x40 if ctx.args[2] else 0)
        self.wl.syscalls.open(ctx, "do_sigaction")

    @SYSCALLS.exit("rt_sigaction")
    def _sigaction_exit(self, ctx: SyscallCtx, ret: int) -> None:
        raw = ctx.caps.get(1)
        if ret == 0 and raw is not None and len(raw) >= SIGACTION.size:
            handler, flags = SIGACTION.unpack_from(raw)
            ctx.thread.proc.sig.handlers[arg_int(ctx.args[0])] = (handler, flags)

    @SYSCALLS.enter("rt_sigprocmask")
    def _sigprocmask_enter(self, ctx: SyscallCtx) -> None:
        """rt_sigprocmask() → sigprocmask(how, &new_set, &old_set) → set_current_blocked()."""
        if ctx.args[1]:
            ctx.regs["sigprocmask"] = (arg_int(ctx.args[0]), ctx.frame, ctx.frame + 8)
            self.wl.syscalls.open(ctx, "sigprocmask")
            self.wl.syscalls.call(ctx, ("__set_current_blocked",))

    @SYSCALLS.exit("rt_sigprocmask")
    def _sigprocmask_exit(self, ctx: SyscallCtx, ret: int) -> None:
        raw = ctx.caps.get(1)
        if ret != 0 or raw is None or len(raw) < 8:
            return
        mask = int.from_bytes(raw[:8], "little") & ~UNBLOCKABLE
        t = ctx.thread
        how = arg_int(ctx.args[0])
        if how == SIG_BLOCK:
            t.blocked |= mask
        elif how == SIG_UNBLOCK:
            t.blocked &= ~mask
        elif how == SIG_SETMASK:
            t.blocked = mask

    @SYSCALLS.enter("rt_sigreturn")
    def _sigreturn(self, ctx: SyscallCtx) -> None:
        """rt_sigreturn() → restore_sigcontext(): the interrupted context comes back."""
        ctx.rets["restore_sigcontext"] = 0
        self.wl.syscalls.call(ctx, "restore_sigcontext")
        self.wl.entry.sigreturn(ctx.task, self.wl.k.sched.cpu)

    @SYSCALLS.enter("rt_sigsuspend")
    def _sigsuspend(self, ctx: SyscallCtx) -> None:
        ctx.regs["sigsuspend"] = (ctx.frame,)
        self.wl.syscalls.open(ctx, "sigsuspend")

    # ------------------------------------------------------------------ delivery
    def dropped(self, t: Thread, sig: int) -> bool:
        """Would an untraced kernel have dropped ``sig`` when it was sent to ``t`` (the
        process ignores it and ``t`` does not block it)?  Its delivery then shows
        nothing."""
        return sig != SIGKILL and not t.blocked & sigbit(sig) and t.proc.sig.ignores(sig)

    def deliver(self, t: Thread, sig: int, errno: int, code: int) -> None:
        """get_signal() dequeued ``sig`` for ``t``: signal_deliver with the action the
        process installed, as 6.12 prints it, and the default actions the model shows
        (a group stop); an ignored signal was dropped when sent (nothing)."""
        wl = self.wl
        tr = wl.traced
        sigs = t.proc.sig
        sigs.pending.discard(sig)
        if self.dropped(t, sig):
            return
        handler, flags = sigs.action(sig)
        tr.flush_restart(t)         # the syscall it interrupted returns first
        wl.itimers.dequeued(t.proc.tgid, sig)
        wl.emit_ctx(D, 1, "signal_deliver", sig, errno, code, handler, flags)
        if handler == SIG_DFL and sig in STOP_SIGNALS:
            tr.stop(t)
        elif handler != SIG_DFL:
            wl.sites.call(("arch_do_signal_or_restart", "x64_setup_rt_frame"))
            wl.entry.signal_frame(t.task, wl.k.sched.cpu)

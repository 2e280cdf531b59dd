"""The x86 FPU state of user tasks (arch/x86/kernel/fpu/core.c, context.h, signal.c,
asm/fpu/sched.h; tracepoints of asm/trace/fpu.h).

A user task's registers are saved when it is switched out (switch_fpu_prepare():
``x86_fpu_regs_deactivated``) and TIF_NEED_FPU_LOAD is set for the task switched in;
on its way back to user space they are loaded again (switch_fpu_return() →
fpregs_restore_userregs(): ``x86_fpu_regs_activated``) unless they are still in the
CPU — it returns on the CPU it left and no other task's registers were loaded there
since.  fork copies the parent's state (``x86_fpu_copy_src``/``_dst``), exec resets it
(the next load is forced), exit drops it (``x86_fpu_regs_deactivated``,
``x86_fpu_dropped``); a signal frame saves it and the handler starts from the init
state (fpu__clear_user_states(): ``x86_fpu_regs_activated``); rt_sigreturn loads the
frame's state (``x86_fpu_regs_activated``).

Modelled values: ``fpu`` is &task->thread.fpu (the task_struct's address plus BTF's
offset); ``xfeatures`` is what the last save found in use — SSE (0x2) in a task that
ran user code, 0 in a fresh image; ``xcomp_bv`` the compacted-format header of a vCPU
with XSAVES and x87/SSE/AVX state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sched import TRACE_FLAG_BH_OFF, Task
from .defs import D
from .process import task_struct

if TYPE_CHECKING:
    from . import Workload

XFEATURES_IN_USE = 0x2                  # XFEATURE_MASK_SSE
XCOMP_BV = 0x8000000000000007           # XCOMP_BV_COMPACTED_FORMAT | x87 | SSE | AVX


def is_user(task: Task) -> bool:
    return task.pid > 0 and not task.kthread


class Fpu:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.owner = [0] * wl.k.nr_cpus           # fpu_fpregs_owner_ctx: whose registers
        self.need_load: set[int] = set()           # TIF_NEED_FPU_LOAD
        self.last_cpu: dict[int, int] = {}
        self.fresh: set[int] = set()               # state reset by exec, not used yet
        self._off = 0

    def addr(self, pid: int) -> int:
        if not self._off:
            self._off = self.wl.k.mem.offset("task_struct", "thread.fpu")
        return task_struct(pid) + self._off

    def _emit(self, name: str, pid: int, load: bool, flags: int, depth: int) -> None:
        if not self.wl.tp(name):
            return      # nothing attached: the address (a BTF lookup at first) is not needed
        xfeatures = 0 if pid in self.fresh else XFEATURES_IN_USE
        self.wl.emit_ctx(flags, depth, name, self.addr(pid), int(load), xfeatures, XCOMP_BV)

    def _activate(self, pid: int, cpu: int, flags: int, depth: int) -> None:
        """fpregs_activate(): this task's registers are the CPU's."""
        self._emit("x86_fpu_regs_activated", pid, pid in self.need_load, flags, depth)
        self.owner[cpu] = pid
        self.last_cpu[pid] = cpu

    def _restore(self, pid: int, cpu: int, flags: int, depth: int) -> None:
        """fpregs_restore_userregs(): loaded unless still valid on this CPU."""
        if self.owner[cpu] != pid or self.last_cpu.get(pid) != cpu:
            self._activate(pid, cpu, flags, depth)
        self.need_load.discard(pid)

    # ------------------------------------------------------------------ scheduling
    def switch(self, cpu: int, prev: Task, nxt: Task) -> None:
        """__switch_to(): switch_fpu_prepare(prev) unless its registers were not loaded,
        switch_fpu_finish(next)."""
        wl = self.wl
        if is_user(prev) and prev.pid not in self.need_load:
            self.fresh.discard(prev.pid)            # the save found its state in use
            if wl.tp("x86_fpu_regs_deactivated"):
                self._emit("x86_fpu_regs_deactivated", prev.pid, False, D, 2)
            self.last_cpu[prev.pid] = cpu
        if is_user(nxt):
            self.need_load.add(nxt.pid)

    def exit_to_user(self, task: Task, cpu: int) -> None:
        """arch_exit_to_user_mode_prepare() → switch_fpu_return() (interrupts off)."""
        if task.pid in self.need_load and is_user(task):
            self._restore(task.pid, cpu, D, 0)

    # ------------------------------------------------------------------ process life
    def fork(self, parent: Task, child: Task, cpu: int) -> None:
        """fpu_clone(): the parent's registers (loaded first if they were not) saved
        into the child's state."""
        pid = parent.pid
        if pid in self.need_load:
            self._restore(pid, cpu, TRACE_FLAG_BH_OFF, 0)
        self._emit("x86_fpu_copy_src", pid, False, 0, 0)
        self._emit("x86_fpu_copy_dst", child.pid, False, 0, 0)
        self.need_load.add(child.pid)
        self.last_cpu[child.pid] = -1

    def exec(self, task: Task) -> None:
        """fpu_flush_thread(): init state, registers invalid, a load forced."""
        self.need_load.add(task.pid)
        self.last_cpu[task.pid] = -1
        self.fresh.add(task.pid)

    def exit(self, task: Task, cpu: int) -> None:
        """exit_thread() → fpu__drop() (preemption off)."""
        pid = task.pid
        self._emit("x86_fpu_regs_deactivated", pid, pid in self.need_load, 0, 1)
        self._emit("x86_fpu_dropped", pid, pid in self.need_load, 0, 1)
        if self.owner[cpu] == pid:
            self.owner[cpu] = 0
        self.forget(pid)

    def forget(self, pid: int) -> None:
        self.need_load.discard(pid)
        self.last_cpu.pop(pid, None)
        self.fresh.discard(pid)

    # ------------------------------------------------------------------ signals
    def signal_frame(self, task: Task, cpu: int) -> None:
        """get_sigframe() → copy_fpstate_to_sigframe() (the registers loaded to be
        saved into the frame), then fpu__clear_user_states() → fpregs_mark_activate(),
        under fpregs_lock() (bottom halves off)."""
        pid = task.pid
        if pid in self.need_load:
            self._restore(pid, cpu, TRACE_FLAG_BH_OFF, 0)
        self._activate(pid, cpu, TRACE_FLAG_BH_OFF, 0)
        self.need_load.discard(pid)

    def sigreturn(self, task: Task, cpu: int) -> None:
        """restore_fpregs_from_user() → fpregs_mark_activate()."""
        self._activate(task.pid, cpu, TRACE_FLAG_BH_OFF, 0)
        self.need_load.discard(task.pid)

"""The idle loop (kernel/sched/idle.c do_idle() on a machine without a cpuidle driver,
as a qemu VM is: cpuidle_idle_call() → default_idle_call()).

Entering idle: tick_nohz_idle_enter(), then each pass of the loop decides about the tick
(stop it once a tick came in idle, else keep it) and halts between ``cpu_idle`` state 1
and ``cpu_idle`` PWR_EVENT_EXIT; interrupts are taken inside the halt.  A pass ends with
an interrupt: the loop goes round again, or — something was woken to run here
(need_resched) — it leaves: tick_nohz_idle_exit() restarts the tick, schedule_idle()
switches to the task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .defs import PWR_EVENT_EXIT, D

if TYPE_CHECKING:
    from . import Workload

IDLE_DEPTH = 1      # the idle task runs with preemption disabled


class Idle:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        n = wl.k.nr_cpus
        self.inidle = [True] * n       # the idle task runs (do_idle)
        self.halted = [True] * n       # inside default_idle_call()'s halt

    def enter(self, cpu: int) -> None:
        """The CPU switched to its idle task: do_idle() up to the first halt."""
        self.inidle[cpu] = True
        self.wl.tick.idle_enter(cpu)
        self.halt(cpu, False)

    def halt(self, cpu: int, got_tick: bool) -> None:
        """One pass of the idle loop: cpuidle_idle_call(got_tick) → the tick stopped or
        kept (idle_call_stop_or_retain_tick()), then default_idle_call() halts."""
        wl = self.wl
        if wl.background.live:
            tick = wl.tick
            if got_tick or tick.stopped(cpu):
                tick.idle_stop_tick(cpu, IDLE_DEPTH)
            wl.emit_ctx(D, IDLE_DEPTH, "cpu_idle", 1, cpu)
        self.halted[cpu] = True

    def woken(self, cpu: int) -> None:
        """An interrupt ended the halt: default_idle_call() returns (``cpu_idle``
        PWR_EVENT_EXIT)."""
        if self.halted[cpu]:
            self.halted[cpu] = False
            if self.wl.background.live:
                self.wl.emit_ctx(D, IDLE_DEPTH, "cpu_idle", PWR_EVENT_EXIT, cpu)

    def leave(self, cpu: int) -> None:
        """need_resched: the loop ends (a halt ended by an interrupt the model does not
        show ends first), tick_nohz_idle_exit(), then schedule_idle()."""
        self.woken(cpu)
        self.inidle[cpu] = False
        wl = self.wl
        if wl.background.live:
            wl.tick.idle_exit(cpu, IDLE_DEPTH)
        else:
            wl.tick.ts[cpu].inidle = False

"""The timer migration hierarchy (kernel/time/timer_migration.c) of a machine whose CPUs
fit one group: a single level-0 group, the top of the hierarchy, whose children are the
CPUs (groupmask ``1 << cpu``).

A CPU going idle (tick stopped) leaves the group's active set and queues the expiry of
its first global timer as its event in the group; the group's migrator (an active CPU)
expires those events remotely from its timer softirq.  When the last CPU goes idle it
keeps the first event of the group as its own wakeup.  The state changes and their
tracepoints follow tmigr_cpu_activate(), tmigr_cpu_deactivate(), tmigr_cpu_new_timer(),
tmigr_quick_check(), tmigr_requires_handle_remote() and tmigr_handle_remote(), with the
lock depth each tracepoint is reached at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..clock import TICK_NS, jiffies_of
from .defs import D
from .hrtimer import KTIME_MAX
from .timer import BASE_GLOBAL

if TYPE_CHECKING:
    from . import Workload

TMIGR_NONE = 0xFF
TMIGR_GROUP = 0xFFFF888100A3C800     # the level-0 group (kzalloc'd at boot)


@dataclass(slots=True)
class TmigrCpu:
    """struct tmigr_cpu: its event in the group (``expires``, ``ignore``, ``queued``)."""

    cpu: int
    idle: bool = False
    remote: bool = False
    wakeup: int = KTIME_MAX
    expires: int = KTIME_MAX
    ignore: bool = True
    queued: bool = False


class TimerMigration:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        n = wl.k.nr_cpus
        self.tmc = [TmigrCpu(c) for c in range(n)]
        self.active = (1 << n) - 1
        self.migrator = 1            # CPU 0
        self.next_expiry = KTIME_MAX

    # ------------------------------------------------------------------ helpers
    def _group_next(self) -> int:
        """tmigr_next_groupevt(): the first queued, not ignored CPU event."""
        evts = [t.expires for t in self.tmc if t.queued and not t.ignore]
        self.next_expiry = min(evts) if evts else KTIME_MAX
        return self.next_expiry

    def _first_cpu(self) -> int:
        best = None
        for t in self.tmc:
            if t.queued and not t.ignore and (best is None or t.expires < best.expires):
                best = t
        return best.cpu if best is not None else 0

    def _is_migrator(self, cpu: int) -> bool:
        return self.migrator in (1 << cpu, TMIGR_NONE)

    def _set_state(self, name: str, childmask: int, depth: int) -> None:
        """tmigr_group_set_cpu_active/_inactive: the group's new state."""
        self.wl.emit_ctx(D, depth, name, TMIGR_GROUP, 0, 0, 0, childmask, self.active, self.migrator)

    def _update_events(self, t: TmigrCpu, nextexp: int, remote: bool, depth: int) -> int:
        """tmigr_update_events() for the top-level group with a CPU child: the CPU's event
        (re)queued or dropped; when the group is idle the first event is returned (the
        last CPU going idle must handle it), else KTIME_MAX."""
        groupactive = self.active
        if t.queued:
            if t.expires == nextexp and not t.ignore:
                pass
            else:
                t.queued = False
                self._group_next()
        if not t.ignore and not t.queued:
            t.expires = nextexp
            t.queued = True
            self._group_next()
        firstexp = KTIME_MAX
        if self.migrator == TMIGR_NONE:
            if remote:
                return firstexp
            firstexp = self._group_next()
        self.wl.emit_ctx(D, depth, "tmigr_update_events", 0, TMIGR_GROUP, nextexp,
                         self.next_expiry, 0, 0, 0, 0, groupactive)
        return firstexp

    # ------------------------------------------------------------------ activity
    def cpu_activate(self, cpu: int, depth: int) -> None:
        """tmigr_cpu_activate() (timer_clear_idle(): the tick restarts)."""
        t = self.tmc[cpu]
        if not t.idle:
            return
        t.idle = False
        wl = self.wl
        wl.emit_ctx(D, depth + 1, "tmigr_cpu_active", t.wakeup, TMIGR_GROUP, cpu)
        t.ignore = True
        t.wakeup = KTIME_MAX
        if self.migrator == TMIGR_NONE:
            self.migrator = 1 << cpu
        self.active |= 1 << cpu
        self._set_state("tmigr_group_set_cpu_active", 1 << cpu, depth + 1)

    def cpu_deactivate(self, cpu: int, nextexp: int, depth: int) -> int:
        """tmigr_cpu_deactivate() (the tick stops): the CPU leaves the active set, its
        global event is queued; returns its wakeup (the group's first event when it was
        the last active CPU)."""
        t = self.tmc[cpu]
        mask = 1 << cpu
        if nextexp != KTIME_MAX:
            t.ignore = False
        self.active &= ~mask
        if self.migrator == mask:
            rest = self.active
            self.migrator = (rest & -rest) if rest else TMIGR_NONE
        self._set_state("tmigr_group_set_cpu_inactive", mask, depth + 1)
        firstexp = self._update_events(t, nextexp, False, depth + 2)
        t.idle = True
        t.wakeup = firstexp
        self.wl.emit_ctx(D, depth + 1, "tmigr_cpu_idle", nextexp, t.wakeup, TMIGR_GROUP, cpu)
        return firstexp

    def cpu_new_timer(self, cpu: int, nextexp: int, depth: int) -> int:
        """tmigr_cpu_new_timer(): an idle CPU re-evaluates its next global timer."""
        t = self.tmc[cpu]
        ret = t.wakeup
        if nextexp != KTIME_MAX and (nextexp != t.expires or t.ignore) and not t.remote:
            self.wl.emit_ctx(D, depth + 1, "tmigr_cpu_new_timer", t.wakeup, TMIGR_GROUP, cpu)
            t.ignore = False
            ret = self._update_events(t, nextexp, False, depth + 2)
            t.wakeup = ret
        self.wl.emit_ctx(D, depth + 1, "tmigr_cpu_new_timer_idle", nextexp, t.wakeup, TMIGR_GROUP, cpu)
        return ret

    def quick_check(self, cpu: int, nextevt: int) -> int:
        """tmigr_quick_check(): KTIME_MAX unless this CPU is the lonely migrator."""
        lonely = bin(self.active).count("1") <= 1
        if not (self._is_migrator(cpu) and lonely):
            return KTIME_MAX
        return min(nextevt, self.next_expiry)

    # ------------------------------------------------------------------ remote expiry
    def requires_handle_remote(self, cpu: int, now: int) -> bool:
        """tmigr_requires_handle_remote() (run_local_timers())."""
        t = self.tmc[cpu]
        if not t.idle:
            return self._is_migrator(cpu) and now >= self.next_expiry
        return now >= t.wakeup

    def handle_remote(self, cpu: int, depth: int) -> None:
        """tmigr_handle_remote() from the timer softirq: the expired events of idle CPUs
        are handled here — their global timers run on this CPU."""
        t = self.tmc[cpu]
        if not self._is_migrator(cpu) and t.wakeup == KTIME_MAX:
            return
        wl = self.wl
        now = wl.k.boot_clock.peek()
        wl.emit_ctx(0, depth, "tmigr_handle_remote", TMIGR_GROUP, 0)
        if not self._is_migrator(cpu):
            # the walk stops at the group (not its migrator): tmc->wakeup gets the
            # walk's firstexp, KTIME_MAX, so an idle CPU no longer chases timers
            # another CPU expired
            t.wakeup = KTIME_MAX
            return
        while True:
            self._group_next()
            if self.next_expiry > now:
                break
            remote = self.tmc[self._first_cpu()]
            remote.queued = False
            self._handle_remote_cpu(remote, now, depth)
        t.wakeup = self._group_next()

    def _handle_remote_cpu(self, t: TmigrCpu, now: int, depth: int) -> None:
        """tmigr_handle_remote_cpu(): expire the global timers of idle ``t`` here."""
        if t.remote or t.ignore or now < t.expires:
            return
        wl = self.wl
        wl.emit_ctx(D, depth + 1, "tmigr_handle_remote_cpu", t.wakeup, TMIGR_GROUP, t.cpu)
        t.remote = True
        t.wakeup = KTIME_MAX
        jiffies = jiffies_of(now)
        wl.timers.expire_base(t.cpu, BASE_GLOBAL, jiffies, depth)
        if t.idle:
            basem = now // TICK_NS * TICK_NS
            nextexp = wl.timers.global_expiry(t.cpu, jiffies, basem)
            if nextexp == KTIME_MAX:
                t.ignore = True
            self._update_events(t, nextexp, True, depth + 4)
        t.remote = False

    # ------------------------------------------------------------------ resync
    def set_state(self, idle: list[bool], global_next: list[int]) -> None:
        """Put the hierarchy in the state the CPUs' idle states give (no trace: the
        machine did not run meanwhile)."""
        self.active = 0
        self.migrator = TMIGR_NONE
        for cpu, t in enumerate(self.tmc):
            t.idle = idle[cpu]
            t.remote = False
            t.queued = False
            t.ignore = True
            t.expires = KTIME_MAX
            t.wakeup = KTIME_MAX
            if not t.idle:
                self.active |= 1 << cpu
                if self.migrator == TMIGR_NONE:
                    self.migrator = 1 << cpu
            elif global_next[cpu] != KTIME_MAX:
                t.ignore = False
                t.queued = True
                t.expires = global_next[cpu]
        first = self._group_next()
        if self.migrator == TMIGR_NONE and first != KTIME_MAX:
            self.tmc[self._first_cpu()].wakeup = first

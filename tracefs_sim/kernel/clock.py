"""Trace clocks (kernel/trace/trace_clock.c and the trace_clocks[] table of trace.c).

Every clock is derived from one boot-relative nanosecond source.  In deterministic
mode (``--seed``) that source is virtual: it advances by a seeded pseudo-random step
at every reading, so the same seed and the same commands give the same timestamps.
"""

from __future__ import annotations

import errno
import random
import time
from dataclasses import dataclass
from typing import Protocol

from .errors import KernelError

TSC_KHZ = 2_496_000  # a plausible x86 TSC frequency: cycles = ns * 2.496
HZ = 250  # Debian's CONFIG_HZ
TICK_NS = 1_000_000_000 // HZ  # 4 ms at HZ=250
INITIAL_JIFFIES = (1 << 32) - 300 * HZ  # jiffies at boot (INITIAL_JIFFIES, 64-bit)


def jiffies_of(ns: int) -> int:
    """``jiffies`` at boot-clock ``ns`` (one tick each TICK_NS from INITIAL_JIFFIES)."""
    return (INITIAL_JIFFIES + ns // TICK_NS) & 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True)
class ClockDef:
    name: str
    in_ns: bool


# Order and names exactly as trace.c's trace_clocks[] on x86_64 (ARCH_TRACE_CLOCKS = x86-tsc).
CLOCKS: tuple[ClockDef, ...] = (
    ClockDef("local", True), ClockDef("global", True), ClockDef("counter", False),
    ClockDef("uptime", False), ClockDef("perf", True), ClockDef("mono", True),
    ClockDef("mono_raw", True), ClockDef("boot", True), ClockDef("tai", True),
    ClockDef("x86-tsc", False),
)
CLOCK_NAMES = tuple(c.name for c in CLOCKS)


class Cpus(Protocol):
    """What the clock needs of the scheduler: how many CPUs, and which one code runs on."""

    nr_cpus: int
    cpu: int


class BootClock:
    """Nanoseconds since boot: real (monotonic) or virtual (seeded).

    Observations of traced host tasks arrive a little after they happened, each stamped
    with the CLOCK_MONOTONIC time of its stop; while one is processed the clock is
    ``pin``ned to that time (readings step forward by ``PIN_STEP`` ns, as code takes
    time), so a ``sleep 1`` is a second in the trace however late it is processed.

    The clock never goes backwards on a CPU: a pinned time older than a reading already
    handed out on the CPU the code runs on continues from that reading.  Per CPU, as the
    ring buffer needs it (each CPU's buffer is in time order; readers merge them), so
    what happened on one CPU can be placed at its real time after a later observation on
    another CPU was processed: a traced task's sleep is known to have started at its
    entry only when its exit comes."""

    PIN_STEP = 120

    def __init__(self, cpus: Cpus, rng: random.Random | None = None,
                 boot_offset_ns: int = 4_000_000_000) -> None:
        self._cpus = cpus
        self._rng = rng
        self._virtual = boot_offset_ns
        self._base = time.monotonic_ns() - boot_offset_ns
        self._pinned: int | None = None
        self._last = [0] * cpus.nr_cpus

    @property
    def deterministic(self) -> bool:
        return self._rng is not None

    def ns(self) -> int:
        if self._rng is not None:
            self._virtual += 150 + self._rng.randrange(1200)
            return self._virtual
        if self._pinned is not None:
            self._pinned += self.PIN_STEP
            now = self._pinned
        else:
            now = time.monotonic_ns() - self._base
        last = self._last
        cpu = self._cpus.cpu
        if now <= last[cpu]:
            now = last[cpu] + 1
        last[cpu] = now
        return now

    def peek(self) -> int:
        """What a reading would say now, without handing one out (no CPU's clock moves)."""
        if self._rng is not None:
            return self._virtual
        if self._pinned is not None:
            return self._pinned + self.PIN_STEP
        return time.monotonic_ns() - self._base

    def floor(self, cpu: int) -> int:
        """The last reading handed out on ``cpu`` (the next one comes after it)."""
        return self._last[cpu]

    def from_monotonic(self, mono_ns: int) -> int:
        """A CLOCK_MONOTONIC reading of this machine as boot-relative ns."""
        return mono_ns - self._base

    @property
    def pinned(self) -> int | None:
        return self._pinned

    def pin(self, boot_ns: int | None) -> None:
        """Readings continue from ``boot_ns`` (on each CPU not before its last one) until
        ``unpin``; ``None`` unpins (so a saved ``pinned`` can be restored)."""
        self._pinned = None if boot_ns is None else boot_ns - self.PIN_STEP

    def unpin(self) -> None:
        self._pinned = None

    def advance(self, delta_ns: int) -> None:
        """Let virtual time pass (a simulated sleep); real time passes by itself."""
        if self._rng is not None:
            self._virtual += delta_ns


class TraceClock:
    """One trace_array's selected clock (``trace_clock`` file)."""

    __slots__ = ("boot", "idx", "_counter", "_tai_offset", "_real_offset")

    def __init__(self, boot: BootClock) -> None:
        self.boot = boot
        self.idx = 0
        self._counter = 0
        self._tai_offset = 1_700_000_000_000_000_000
        self._real_offset = 0

    @property
    def name(self) -> str:
        return CLOCKS[self.idx].name

    @property
    def in_ns(self) -> bool:
        return CLOCKS[self.idx].in_ns

    def select(self, name: str) -> None:
        try:
            self.idx = CLOCK_NAMES.index(name)
        except ValueError:
            raise KernelError(errno.EINVAL) from None

    def now(self) -> int:
        idx = self.idx
        if idx == 2:  # counter: an atomic increment per reading
            self._counter += 1
            return self._counter
        ns = self.boot.ns()
        if idx == 3:  # uptime: jiffies
            return ns * HZ // 1_000_000_000
        if idx == 8:  # tai
            return ns + self._tai_offset
        if idx == 9:  # x86-tsc: cycles
            return ns * TSC_KHZ // 1_000_000
        return ns

    def show(self) -> str:
        return " ".join(f"[{n}]" if i == self.idx else n for i, n in enumerate(CLOCK_NAMES)) + "\n"

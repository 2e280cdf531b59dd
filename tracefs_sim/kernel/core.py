"""``Kernel``: boots and owns every subsystem, like start_kernel() + the initcalls.

Boot order mirrors the dependency order of kernel/trace: data (kallsyms, btf),
sched and clocks, ftrace, the tracing core (trace_array, tracers), events,
dynamic events, then the workload that gives tracers something to see.
Every subsystem is built by an explicit call in ``Kernel.__init__``: nothing is looked up
by name, so a missing or broken piece fails the boot instead of leaving inert files.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from types import ModuleType

from . import (
    fgraph,
    ftrace,
    trace_dynevent,
    trace_eprobe,
    trace_events,
    trace_events_hist,
    trace_events_synth,
    trace_fprobe,
    trace_functions,
    trace_functions_graph,
    trace_kprobe,
    trace_stack,
    trace_uprobe,
    workload,
)
from .bpf_trace import KprobeMulti
from .btf import BTF
from .clock import BootClock
from .fgraph import Fgraph
from .fprobe import FprobeCore
from .ftrace import Ftrace
from .kallsyms import Kallsyms
from .kprobes import KprobeCore
from .mm import Memory
from .module import Modules
from .rcu import Rcu
from .sched import TASK_COMM_LEN, Sched, Task
from .trace import Tracing
from .trace_dynevent import DynEvents
from .trace_eprobe import EprobeEvents
from .trace_events import TraceEvents
from .trace_events_hist import HistCommand
from .trace_events_synth import SynthEvents
from .trace_events_trigger import TriggerCommands
from .trace_fprobe import FprobeEvents
from .trace_functions import FunctionTracer
from .trace_functions_graph import GraphTracer
from .trace_kprobe import KprobeEvents
from .trace_output import register_core_printers
from .trace_stack import StackTracer
from .trace_uprobe import UprobeEvents
from .workload import Workload


class Kernel:
    """A booted simulated kernel: every subsystem is a typed field, built in
    ``__init__`` in the kernel's initcall order by explicit calls.  A missing or broken
    piece fails here, at boot, with its own exception."""

    nr_cpus: int
    sched: Sched
    rcu: Rcu
    modules: Modules
    kallsyms: Kallsyms
    btf: BTF
    mem: Memory
    trace: Tracing
    ftrace: Ftrace
    fgraph: Fgraph
    events: TraceEvents
    hists: HistCommand
    function_tracer: FunctionTracer
    graph_tracer: GraphTracer
    stack_tracer: StackTracer
    dynevent: DynEvents
    fprobe: FprobeCore
    kprobe_multi: KprobeMulti
    fprobe_events: FprobeEvents
    eprobe_events: EprobeEvents
    synth_events: SynthEvents
    kprobes: KprobeCore
    kprobe_events: KprobeEvents
    uprobe_events: UprobeEvents
    workload: Workload

    def __init__(self, nr_cpus: int | None = None, seed: int | None = None,
                 buffer_kb: int = 1408) -> None:
        self.nr_cpus = nr_cpus or os.cpu_count() or 1
        self.seed = seed
        self.deterministic = seed is not None
        self.rng = random.Random(seed if seed is not None else os.getpid())
        self.sched = Sched(self.nr_cpus)
        self.boot_clock = BootClock(self.sched, random.Random(seed) if seed is not None else None)
        self.rcu = Rcu(self.sched, self.nr_cpus)
        self.kallsyms = Kallsyms()
        self.btf = BTF()
        self._sys_op = ""
        self._sys_frames: list | None = None
        self.log: list[str] = []  # the simulated kernel log (dmesg)
        self.mem = Memory(self.btf)
        self.mem.current_tgid = lambda: self.sched.current.tgid
        # text addresses given to the functions of loaded Python modules (insmod):
        # addr -> (function, module), what %ps prints
        self.module_syms: dict[int, tuple[str, str]] = {}
        self.modules = Modules(self)   # kernel/module.py: insmod, rmmod, /proc/modules
        # /proc/sys entries of the simulated kernel: path under /proc/sys ->
        # (read() -> text, write(text) raising KernelError); the mount mirrors them
        self.sysctls: dict[str, tuple[Callable[[], str], Callable[[str], None]]] = {}
        # read-only debugfs files of the simulated kernel: path under /sys/kernel/debug ->
        # read() -> text (kprobes/list); the mount can publish them (--debugfs-dir)
        self.debugfs: dict[str, Callable[[], str]] = {}
        self.syscall_hooks: list[Callable[[Task], None]] = []
        # the initcalls, in order
        self.trace = Tracing(self, buffer_kb)
        register_core_printers(self.trace.output)
        self.ftrace = ftrace.boot(self)
        self.fgraph = fgraph.boot(self)
        self.events = trace_events.boot(self)
        self.events.triggers = TriggerCommands(self, self.events)
        self.hists = trace_events_hist.boot(self)
        self.function_tracer = trace_functions.boot(self)
        self.graph_tracer = trace_functions_graph.boot(self)
        self.stack_tracer = trace_stack.boot(self)
        self.dynevent = trace_dynevent.boot(self)
        self.fprobe = FprobeCore(self)
        self.kprobe_multi = KprobeMulti(self)     # bpf_trace.c: kprobe_multi/session links
        self.fprobe_events = trace_fprobe.boot(self)
        self.eprobe_events = trace_eprobe.boot(self)
        self.synth_events = trace_events_synth.boot(self)
        self.kprobes = KprobeCore(self)
        self.kprobe_events = trace_kprobe.boot(self)
        self.uprobe_events = trace_uprobe.boot(self)
        self.workload = workload.boot(self)

    # ------------------------------------------------------------------ data
    def kallsyms_addr(self, name: str) -> int:
        addr = self.kallsyms.addr_of(name)
        return addr or 0

    def printk(self, text: str) -> None:
        """Append to the simulated kernel log (also logged by the mount on stderr)."""
        sec, ns = divmod(self.boot_clock.ns(), 1_000_000_000)
        line = f"[{sec:5d}.{ns // 1000:06d}] {text.rstrip()}"
        self.log.append(line)
        logging.getLogger("tracefs_sim.kernel.printk").info("%s", line)
        if len(self.log) > 10000:
            del self.log[:1000]

    def module_symbol(self, func: Callable[..., object], module: str) -> int:
        """An address for a Python function of a loaded module, so ``%ps`` names it."""
        return self.modules.symbol(func, module)

    def insmod(self, path: str, **params: str) -> ModuleType:
        """Load a Python file as a kernel module (kernel/module.py): its
        ``init_module(kernel, **params)`` runs; a failed load raises OSError (errno set)."""
        return self.modules.insmod(path, params).py

    def rmmod(self, name: str) -> None:
        """Unload a module (its ``cleanup_module(kernel)`` runs); the mount's teardown
        unloads with this, forced like ``rmmod -f`` for a module without one."""
        self.modules.delete_module(name, force=True)

    # ------------------------------------------------------------------ syscall context
    def syscall_enter(self, pid: int, comm: str, cpu: int, uid: int = 0, op: str = "",
                      name: str = "", count: int = 0, path: str | tuple[str, ...] = "",
                      before: Callable[[], None] | None = None) -> None:
        """A request from the mount starts running as task ``pid`` on ``cpu``.

        Runs the background workload up to "now" first, so background activity
        interleaves with the user's requests in time order.  ``before`` runs once the
        task has the CPU, ahead of the request's syscall (what the task did meanwhile).
        Every request of the mount comes through here: with nothing attached
        (``Workload.quiet()``) the syscall's code path is not run at all.
        """
        wl = self.workload
        wl.catch_up()
        sched = self.sched
        if wl.hostprocs.synth_host_start and comm not in ("", "<...>"):
            known = sched.tasks.get(pid)
            if known is not None and known.comm != comm[:TASK_COMM_LEN - 1]:
                # a requester whose comm changed exec'd since its last request: its
                # execve and ld.so run first (a kernel that watches the host learns it
                # from there)
                wl.hostprocs.host_exec(pid, comm)
        task = sched.task(pid, comm)
        task.uid = uid
        wl.sched.run_task(cpu % self.nr_cpus, task)  # scheduled in (a sched_switch) unless it already ran there
        if self.trace.cmdline_ref:
            self.trace.record_task(task)
        for hook in self.syscall_hooks:
            hook(task)
        if before is not None:
            before()
        self._sys_op = op
        self._sys_frames = wl.syscalls.begin(op, name=name, count=count, path=path) if op else None

    def syscall_exit(self, ret: int = 0) -> None:
        """The request returns ``ret`` to user space; the CPU goes back to its idle task."""
        frames = self._sys_frames
        if frames is not None:
            self._sys_frames = None
            self.workload.syscalls.end(self._sys_op, frames, ret=ret)
        sched = self.sched
        sched.irq_flags = 0
        sched.preempt_count = 0
        cpu = sched.cpu
        sched.set_current(cpu, sched.idle[cpu])

    def idle_tick(self) -> None:
        """Called periodically by the adapter (not in deterministic mode) to let the
        background workload run while no request arrives."""
        self.workload.catch_up()

"""``Kernel``: boots and owns every subsystem, like start_kernel() + the initcalls.

Boot order mirrors the dependency order of kernel/trace: data (kallsyms, btf),
sched and clocks, ftrace, the tracing core (trace_array, tracers), events,
dynamic events, then the workload that gives tracers something to see.
Optional subsystems whose module is absent are skipped, so the core boots alone.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
from collections.abc import Callable
from typing import Any

from .clock import BootClock
from .mm import Memory
from .sched import TASK_COMM_LEN, Sched, Task
from .trace import Tracing
from .trace_output import register_core_printers

# (attribute, module, factory) for subsystems that plug in at boot, in order.
PLUGINS: tuple[tuple[str, str, str], ...] = (
    ("ftrace", "ftrace", "boot"),
    ("fgraph", "fgraph", "boot"),
    ("events", "trace_events", "boot"),
    ("function_tracers", "trace_functions", "boot"),
    ("graph_tracer", "trace_functions_graph", "boot"),
    ("stack_tracer", "trace_stack", "boot"),
    ("dynevent", "trace_dynevent", "boot"),
    ("fprobe_events", "trace_fprobe", "boot"),
    ("eprobe_events", "trace_eprobe", "boot"),
    ("synth_events", "trace_events_synth", "boot"),
    ("kprobe_events", "trace_kprobe", "boot"),
    ("uprobe_events", "trace_uprobe", "boot"),
    ("workload", "workload", "boot"),
)


class Kernel:
    """A booted simulated kernel."""

    def __init__(self, nr_cpus: int | None = None, seed: int | None = None,
                 buffer_kb: int = 1408, plugins: bool = True) -> None:
        self.nr_cpus = nr_cpus or os.cpu_count() or 1
        self.seed = seed
        self.deterministic = seed is not None
        self.rng = random.Random(seed if seed is not None else os.getpid())
        self.boot_clock = BootClock(random.Random(seed) if seed is not None else None)
        self.sched = Sched(self.nr_cpus)
        self._kallsyms: Any = None
        self._btf: Any = None
        self._sys_op = ""
        self._sys_frames: list | None = None
        self.log: list[str] = []  # the simulated kernel log (dmesg)
        self.mem = Memory(lambda: self.btf)
        # text addresses given to the functions of loaded Python modules (insmod)
        self.module_syms: dict[int, tuple[str, str]] = {}
        self._next_module_addr = 0xFFFFFFFFC1000000
        self.modules: dict[str, Any] = {}
        # /proc/sys entries of the simulated kernel: path under /proc/sys ->
        # (read() -> text, write(text) raising KernelError); the mount mirrors them
        self.sysctls: dict[str, tuple[Callable[[], str], Callable[[str], None]]] = {}
        # read-only debugfs files of the simulated kernel: path under /sys/kernel/debug ->
        # read() -> text (kprobes/list); the mount can publish them (--debugfs-dir)
        self.debugfs: dict[str, Callable[[], str]] = {}
        self.syscall_hooks: list[Callable[[Task], None]] = []
        self.trace = Tracing(self, buffer_kb)
        register_core_printers(self.trace.output)
        self.trace.boot()
        self.plugins: dict[str, Any] = {}
        if plugins:
            for attr, mod, factory in PLUGINS:
                try:
                    module = importlib.import_module(f"{__package__}.{mod}")
                except ModuleNotFoundError as e:
                    if e.name != f"{__package__}.{mod}":
                        raise
                    continue
                boot = getattr(module, factory, None)
                if boot is None:
                    continue
                obj = boot(self)
                self.plugins[attr] = obj
                if obj is not None and not hasattr(self, attr):
                    setattr(self, attr, obj)

    # ------------------------------------------------------------------ data
    @property
    def kallsyms(self) -> Any:
        if self._kallsyms is None:
            from .kallsyms import Kallsyms

            self._kallsyms = Kallsyms()
        return self._kallsyms

    @property
    def btf(self) -> Any:
        if self._btf is None:
            from .btf import BTF

            self._btf = BTF()
        return self._btf

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

    def module_symbol(self, func: Callable[..., Any], module: str) -> int:
        """An address for a Python function of a loaded module, so ``%ps`` names it."""
        for addr, (name, mod) in self.module_syms.items():
            if name == func.__name__ and mod == module:
                return addr
        addr = self._next_module_addr
        self._next_module_addr += 0x100
        self.module_syms[addr] = (func.__name__, module)
        return addr

    def insmod(self, path: str, **params: str) -> Any:
        """Load a Python file as a kernel module: import it and call its
        ``init_module(kernel, **params)`` (a non-zero return fails the load)."""
        import importlib.util
        import os.path

        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(f"tracefs_sim_module_{name}", path)
        if spec is None or spec.loader is None:
            raise OSError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        ret = module.init_module(self, **params) if hasattr(module, "init_module") else 0
        if ret:
            raise OSError(f"{name}: init_module returned {ret}")
        self.modules[name] = module
        return module

    def rmmod(self, name: str) -> None:
        module = self.modules.pop(name)
        if hasattr(module, "cleanup_module"):
            module.cleanup_module(self)

    # ------------------------------------------------------------------ syscall context
    def syscall_enter(self, pid: int, comm: str, cpu: int, uid: int = 0, op: str = "",
                      name: str = "", count: int = 0, path: str = "",
                      before: Callable[[], None] | None = None) -> None:
        """A request from the mount starts running as task ``pid`` on ``cpu``.

        Runs the background workload up to "now" first, so background activity
        interleaves with the user's requests in time order.  ``before`` runs once the
        task has the CPU, ahead of the request's syscall (what the task did meanwhile).
        """
        wl = getattr(self, "workload", None)
        if wl is not None:
            wl.catch_up()
        sched = self.sched
        known = sched.tasks.get(pid)
        if (known is not None and wl is not None and getattr(wl, "synth_host_start", False)
                and comm not in ("", "<...>") and known.comm != comm[:TASK_COMM_LEN - 1]):
            # a requester whose comm changed exec'd since its last request: its execve
            # and ld.so run first (a kernel that watches the host learns it from there)
            wl.host_exec(pid, comm)
        task = sched.task(pid, comm)
        task.uid = uid
        cpu %= self.nr_cpus
        run_task = getattr(wl, "run_task", None)
        if run_task is not None:
            run_task(cpu, task)  # scheduled in (a sched_switch) unless it already ran there
        else:
            sched.set_current(cpu, task)
        tracing = self.trace
        if tracing.cmdline_ref:
            tracing.record_task(task)
        for hook in self.syscall_hooks:
            hook(task)
        if before is not None:
            before()
        self._sys_op = op
        self._sys_frames = (wl.syscall_begin(op, name=name, count=count, path=path)
                            if (wl is not None and op) else None)

    def syscall_exit(self, ret: int = 0) -> None:
        """The request returns ``ret`` to user space; the CPU goes back to its idle task."""
        wl = getattr(self, "workload", None)
        if wl is not None and self._sys_frames is not None:
            wl.syscall_end(self._sys_op, self._sys_frames, ret=ret)
        self._sys_frames = None
        sched = self.sched
        sched.irq_flags = 0
        sched.preempt_count = 0
        sched.set_current(sched.cpu, sched.idle[sched.cpu])

    def idle_tick(self) -> None:
        """Called periodically by the adapter (not in deterministic mode) to let the
        background workload run while no request arrives."""
        wl = getattr(self, "workload", None)
        if wl is not None:
            wl.catch_up()

"""The probe stub path of tracepoints (kernel/tracepoint.c, include/linux/tracepoint.h).

A tprobe (``t:`` dynamic event, trace_fprobe.c) registers the tracepoint's own
``__probestub_NAME(void *__data, TP_PROTO...)`` as a probe of the tracepoint and puts an
fprobe on that empty, traceable function.  When the tracepoint fires, ``__traceiter_NAME``
calls the stub with the tracepoint's TP_ARGS; the stub's ``__fentry__`` call site runs the
fprobe with those arguments in the argument registers (``$arg1`` is the first TP_PROTO
argument: the parser skips ``__data``).

The simulated tracepoints fire with the event's field values (what TP_fast_assign
stores), not with TP_ARGS.  ``ProbeStubCaller`` rebuilds the TP_ARGS from BTF's prototype
of the stub: a ``struct task_struct *`` parameter ``P`` is the task whose pid is the
field ``P_pid`` (or ``pid`` for a lone task argument such as ``p``), laid out in
simulated memory at the BTF offsets of ``pid``, ``tgid``, ``comm``, ``prio`` and
``__state`` so ``prev->pid`` or ``+0(next->comm):string`` fetch what the kernel would; a
scalar parameter takes the field of the same name; anything else is 0 (a NULL pointer:
dereferences fault).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .mm import Regs
from .trace_events_h import FieldValue

if TYPE_CHECKING:
    from .btf import BTF, Type
    from .core import Kernel
    from .sched import Task

STUB_PREFIX = "__probestub_"
TRACEITER_PREFIX = "__traceiter_"
MAX_TASK_OBJECTS = 1024

# (param name, kind, field index or -1): kind "task" (pid field), "scalar", "zero"
ArgPlan = tuple[tuple[str, str, int, int], ...]


class ProbeStubCaller:
    """``TraceEvents.stub_caller``: run ``__probestub_NAME`` through its ftrace site."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        # stub address -> (ftrace record index, parent ip, arg plan) or None (not a stub)
        self._stubs: dict[int, tuple[int, int, ArgPlan] | None] = {}
        self._tasks: dict[int, int] = {}

    def __call__(self, stub: int, values: tuple[FieldValue, ...]) -> None:
        info = self._stubs.get(stub, False)
        if info is False:
            info = self._stubs[stub] = self._resolve(stub)
        if info is None:
            return
        idx, pip, plan = info
        ft = self.k.ftrace
        if ft.site_func[idx] is None:
            return      # the stub's call site is a NOP: nothing probes it
        regs = Regs((0, *self._args(plan, values)))
        regs.ip = stub
        token = ft.func_entry(idx, pip, regs)
        ft.func_exit(idx, token, 0)

    # ------------------------------------------------------------------ resolving
    def _resolve(self, stub: int) -> tuple[int, int, ArgPlan] | None:
        k = self.k
        ft = k.ftrace
        res = k.kallsyms.lookup_addr(stub)
        if res is None or res[1] or not res[0].startswith(STUB_PREFIX):
            return None
        name = res[0][len(STUB_PREFIX):]
        idx = ft.ftrace_location(stub)
        if idx is None:
            return None
        it = k.kallsyms.addr_of(TRACEITER_PREFIX + name) or 0
        pip = it + 0x3E if it else 0
        return idx, pip, self._plan(name)

    def _plan(self, name: str) -> ArgPlan:
        k = self.k
        try:
            proto = k.btf.func_proto(STUB_PREFIX + name)
        except (OSError, ValueError, KeyError):
            proto = None
        if proto is None:
            return ()
        tp = k.events.tracepoint(name)
        call = tp.call if tp is not None else None
        fields = [f.name for f in call.fields] if call is not None else []

        def field(n: str) -> int:
            return fields.index(n) if n in fields else -1

        btf = k.btf
        plan: list[tuple[str, str, int, int]] = []
        params = proto.params[1:]          # __data
        tasks = [p for p in params if _is_task_ptr(btf, p.type)]
        for p in params:
            if _is_task_ptr(btf, p.type):
                i = field(f"{p.name}_pid")
                if i < 0 and len(tasks) == 1:
                    i = field("pid")
                plan.append((p.name, "task" if i >= 0 else "zero", i, field(f"{p.name}_comm")))
            elif p.type is not None and btf.resolve(p.type) is not None and \
                    btf.resolve(p.type).kind in ("int", "enum") and field(p.name) >= 0:
                plan.append((p.name, "scalar", field(p.name), -1))
            else:
                plan.append((p.name, "zero", -1, -1))
        return tuple(plan)

    # ------------------------------------------------------------------ arguments
    def _args(self, plan: ArgPlan, values: tuple[FieldValue, ...]) -> list[int]:
        out: list[int] = []
        for _name, kind, i, _c in plan:
            if kind == "task" and i < len(values):
                out.append(self.task_struct(self._task(int(values[i] or 0))))
            elif kind == "scalar" and i < len(values) and isinstance(values[i], int):
                out.append(values[i] & 0xFFFFFFFFFFFFFFFF)
            else:
                out.append(0)
        return out

    def _task(self, pid: int) -> Task:
        sched = self.k.sched
        if pid == 0:
            return sched.idle[sched.cpu]
        t = sched.tasks.get(pid)
        return t if t is not None else sched.task(pid)

    def task_struct(self, task: Task) -> int:
        """The simulated ``struct task_struct`` of ``task`` (its fields kept current)."""
        mem = self.k.mem
        key = id(task) if task.pid == 0 else task.pid
        addr = self._tasks.get(key)
        if addr is None:
            if len(self._tasks) >= MAX_TASK_OBJECTS:
                self._tasks.clear()
            addr = self._tasks[key] = mem.alloc(_task_size(self.k))
        off = mem.offset
        comm = task.comm.encode("utf-8", "replace")[:15]
        mem.write(addr + off("task_struct", "comm"), comm + bytes(16 - len(comm)))
        mem.write(addr + off("task_struct", "pid"), struct.pack("<i", task.pid))
        mem.write(addr + off("task_struct", "tgid"), struct.pack("<i", task.tgid))
        mem.write(addr + off("task_struct", "prio"), struct.pack("<i", task.prio))
        mem.write(addr + off("task_struct", "__state"), struct.pack("<I", task.state & 0xFFFFFFFF))
        return addr


def _is_task_ptr(btf: BTF, t: Type | None) -> bool:
    target = btf.pointee(t) if t is not None else None
    target = btf.resolve(target) if target is not None else None
    return target is not None and target.kind == "struct" and target.name == "task_struct"


def _task_size(k: Kernel) -> int:
    try:
        t = k.btf.find_type("task_struct")
        return k.btf.sizeof(t) if t is not None else 4096
    except (OSError, ValueError, KeyError):
        return 4096


def install(kernel: Kernel) -> None:
    """Give the event registry its stub caller (once)."""
    ev = kernel.events
    if ev.stub_caller is None:
        ev.stub_caller = ProbeStubCaller(kernel)

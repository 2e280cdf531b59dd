"""Uprobe-based dynamic events: ``p``/``r`` on a user binary (kernel/trace/trace_uprobe.c).

Grammar (``__trace_uprobe_create``)::

    p|r[:[GRP/][EVENT]] PATH:OFFSET[%return][(REF_CTR_OFFSET)] [FETCHARGS]

Default group ``uprobes``, default name ``p_<basename up to . - _>_0x<offset>`` (always
``p_``, even for a return probe, as the kernel writes it).  The kprobe kind is offered
each line first and passes on (-ECANCELED) an ``argv[1]`` with both '/' and ':'.

``PATH`` is looked up like ``kern_path(LOOKUP_FOLLOW)``: a file of the simulated machine
(``SIM_BINARIES``) or any path of the host (read-only ``os.stat``).  Fetch arguments are
parsed with ``TPARG_FL_USER`` (registers, ``$stack``, ``$stackN``, ``$retval``, ``$comm``,
``@+FILE_OFFSET``, ``+|-[u]OFFS(FETCHARG)``, ``ustring``; no symbols) and fetched from
user memory only.

Firing: the simulated kernel sees the tasks that use the mount.  Each syscall entry runs
``task_hook(task)``: a task whose executable (``/proc/PID/exe`` when readable, else its
comm) is a probed file hits that file's enabled uprobes once (its first pass through
them), so ``echo 1 > events/uprobes/x/enable; sh -c …; echo 0 > …`` records events.
"""

from __future__ import annotations

import errno
import os
import stat as _stat
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from .lib import isdigit, kstrtoul
from .ptrace import M64, PtRegs
from .trace_events_h import TRACE_EVENT_FL_UPROBE
from .trace_probe import (
    MAX_ARGSTR_LEN,
    MAX_EVENT_NAME_LEN,
    MAX_TRACE_ARGS,
    PROBE_HEAD_SIZE,
    PROBE_RET_HEAD_SIZE,
    TP_FLAG_PROFILE,
    TP_FLAG_TRACE,
    TPARG_FL_RETURN,
    TPARG_FL_USER,
    FetchEnv,
    FetchOp,
    ParseContext,
    ProbeDynEvent,
    ProbeErr,
    TraceProbeKind,
    traceprobe_finish_parse,
    traceprobe_parse_probe_arg,
)
from .trace_probe_tmpl import (
    ProbeEventPrinter,
    process_fetch_insn,
    process_fetch_insn_bottom,
    trace_probe_trace_func,
)

if TYPE_CHECKING:
    from .core import Kernel
    from .mm import Memory
    from .sched import Task
    from .trace_dynevent import DynEvent
    from .trace_events import EventFile
    from .trace_output import TraceIter
    from .trace_probe import FetchInsn, TraceProbeEvent

UPROBE_EVENT_SYSTEM = "uprobes"
USER_TEXT_BASE = 0x5600_0000_0000
_Q = struct.Struct("<Q")

# Regular files of the simulated machine (path -> size), for when the host lacks them.
SIM_BINARIES: dict[str, int] = {
    "/bin/sh": 125_688, "/usr/bin/sh": 125_688, "/bin/dash": 125_688, "/usr/bin/dash": 125_688,
    "/bin/bash": 1_265_648, "/usr/bin/bash": 1_265_648, "/bin/cat": 44_016,
    "/usr/bin/cat": 44_016, "/bin/ls": 151_344, "/usr/bin/ls": 151_344,
    "/bin/sleep": 35_336, "/usr/bin/sleep": 35_336, "/usr/bin/seq": 48_144,
    "/lib/x86_64-linux-gnu/libc.so.6": 1_922_136,
    "/usr/lib/x86_64-linux-gnu/libc.so.6": 1_922_136,
}
SIM_DIRS = frozenset(("/", "/bin", "/usr", "/usr/bin", "/lib", "/usr/lib", "/sys", "/proc",
                      "/tmp", "/etc", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"))


class SimPath:
    """What ``kern_path`` found: identity (the inode), size, regular or not."""

    __slots__ = ("ino", "size", "regular", "real")

    def __init__(self, ino: tuple[int, int] | str, size: int, regular: bool, real: str) -> None:
        self.ino = ino
        self.size = size
        self.regular = regular
        self.real = real


def kern_path(name: str) -> SimPath | int:
    """``kern_path(name, LOOKUP_FOLLOW)``: a SimPath or -errno."""
    try:
        st = os.stat(name)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        return -errno.ENOTDIR
    except PermissionError:
        return -errno.EACCES
    except OSError as e:
        return -(e.errno or errno.ENOENT)
    if st is not None:
        return SimPath((st.st_dev, st.st_ino), st.st_size, _stat.S_ISREG(st.st_mode),
                       os.path.realpath(name))
    norm = os.path.normpath(name) if name else name
    if norm in SIM_BINARIES:
        return SimPath(norm, SIM_BINARIES[norm], True, norm)
    if norm in SIM_DIRS:
        return SimPath(norm, 4096, False, norm)
    return -errno.ENOENT


def _user_vaddr(path: SimPath, offset: int) -> int:
    """Where the probed file offset is mapped in a process (a PIE at a stable base)."""
    h = 0
    for c in path.real.encode():
        h = (h * 131 + c) & 0xFFFFFFFF
    return USER_TEXT_BASE + ((h & 0xFFFF) << 24) + offset


# --------------------------------------------------------------------------- fetching
class _UserMem:
    """Uprobe fetches read user memory whatever the op (copy_from_user)."""

    __slots__ = ("mem",)

    def __init__(self, mem: Memory) -> None:
        self.mem = mem

    def read(self, addr: int, size: int, user: bool = False) -> bytes | None:
        return self.mem.read(addr, size, True)

    def read_str(self, addr: int, maxlen: int, user: bool = False) -> bytes | None:
        return self.mem.read_str(addr, maxlen, True)


class UprobeRegs(PtRegs):
    """User pt_regs at the breakpoint; ``ubase`` = bp_addr - probe offset."""

    __slots__ = ("ubase",)

    def __init__(self, ip: int, ubase: int, retval: int | None = None) -> None:
        super().__init__(None, ip, 0, retval, user=True)
        self.ubase = ubase


def uprobe_process_fetch_insn(code: list[FetchInsn], env: FetchEnv, dest: bytearray | None,
                              doff: int, base: int) -> int:
    """trace_uprobe.c ``process_fetch_insn``: registers, the user stack, file offsets."""
    insn = code[0]
    op = insn.op
    regs = env.regs
    assert isinstance(regs, UprobeRegs)
    if op == FetchOp.REG:
        val = regs.get_register(insn.param)
    elif op == FetchOp.STACK:
        raw = env.mem.read((regs.stack_pointer() + 8 * insn.param) & M64, 8, True)
        val = int.from_bytes(raw, "little") if raw is not None and len(raw) == 8 else 0
    elif op == FetchOp.STACKP:
        val = regs.stack_pointer()
    elif op == FetchOp.RETVAL:
        val = regs.return_value()
    elif op == FetchOp.FOFFS:
        val = (regs.ubase + insn.immediate) & M64
    else:
        return process_fetch_insn(code, env, dest, doff, base)
    return process_fetch_insn_bottom(code, 1, val & M64, env, dest, doff, base, None)


# --------------------------------------------------------------------------- events
class UprobePrinter(ProbeEventPrinter):
    """``print_uprobe_event``: raw user addresses, no symbols."""

    def head(self, it: TraceIter) -> str:
        if self.head_size == PROBE_RET_HEAD_SIZE:
            func = _Q.unpack_from(it.buf, it.off + 8)[0]
            ret_ip = _Q.unpack_from(it.buf, it.off + 16)[0]
            return f"0x{ret_ip:x} <- 0x{func:x}"
        return f"0x{_Q.unpack_from(it.buf, it.off + 8)[0]:x}"


class TraceUprobe(ProbeDynEvent):
    """``struct trace_uprobe``."""

    event: TraceProbeEvent[TraceUprobe]
    kind: UprobeEvents

    def __init__(self, kind: UprobeEvents, group: str, event: str, nargs: int,
                 is_return: bool, path: SimPath, filename: str, offset: int,
                 ref_ctr_offset: int) -> None:
        super().__init__(kind, group, event, nargs, TRACE_EVENT_FL_UPROBE)
        self.filename = filename
        self.path = path
        self.offset = offset
        self.ref_ctr_offset = ref_ctr_offset
        self.nhits = 0
        self.is_ret = is_return
        self.registered = False          # uprobe_register() done (event enabled)
        self.fired: set[int] = set()     # pids that already passed the breakpoint
        self.event.call.printer = UprobePrinter(
            self.event, PROBE_RET_HEAD_SIZE if is_return else PROBE_HEAD_SIZE)


class UprobeEvents(TraceProbeKind[TraceUprobe]):
    """The ``trace_uprobe_ops`` dyn_event kind of one kernel."""

    probe_class = TraceUprobe
    log_subsystem = "trace_uprobe"

    def __init__(self, kernel: Kernel,
                 resolve: Callable[[str], SimPath | int] = kern_path) -> None:
        super().__init__(kernel)
        self.resolve = resolve
        self.mem = _UserMem(kernel.mem)
        self.nr_registered = 0           # probes between uprobe_register/unregister

    # --------------------------------------------------------------- dyn_event ops
    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, TraceUprobe)
        out = f"{'r' if ev.is_ret else 'p'}:{ev.group}/{ev.name} {ev.filename}:0x{ev.offset:016x}"
        if ev.ref_ctr_offset:
            out += f"(0x{ev.ref_ctr_offset:x})"
        return out + ev.tp.show_args() + "\n"

    def location(self, p: TraceUprobe) -> str:
        head = f"0x{p.offset:016x}"
        if p.ref_ctr_offset:
            head += f"(0x{p.ref_ctr_offset:x})"
        return head

    def same_location(self, a: TraceUprobe, b: TraceUprobe) -> bool:
        """trace_uprobe_has_same_uprobe(): the same inode and offset."""
        return a.path.ino == b.path.ino and a.offset == b.offset

    def match_location(self, p: TraceUprobe, arg: str) -> bool:
        """trace_uprobe_match_command_head(): ``PATH:OFFSET[(REF)]``."""
        fn = p.filename
        if not arg.startswith(fn) or arg[len(fn):len(fn) + 1] != ":":
            return False
        return self.location(p)[:MAX_ARGSTR_LEN] == arg[len(fn) + 1:]

    # --------------------------------------------------------------- files
    def profile_text(self) -> str:
        """``uprobe_profile``: ``"  %s %-44s %15lu\\n"`` (file, event, hits)."""
        return "".join(f"  {tu.filename} {tu.name:<44} {tu.nhits:>15}\n" for tu in self.probes())

    # --------------------------------------------------------------- parsing
    def parse(self, argv: list[str]) -> int:
        """__trace_uprobe_create()."""
        c = argv[0][0]
        if c not in ("p", "r"):
            return -errno.ECANCELED
        is_return = c == "r"
        if len(argv) < 2:
            return -errno.ECANCELED
        if len(argv) - 2 > MAX_TRACE_ARGS:
            return -errno.E2BIG
        event: str | None = argv[0][2:] if argv[0][1:2] == ":" else None
        spec = argv[1]
        if "/" not in spec:
            return -errno.ECANCELED
        colon = spec.rfind(":")
        if colon < 0 or not (spec[colon + 1:colon + 2] and isdigit(spec[colon + 1])):
            return -errno.ECANCELED
        with self.parsing(argv):
            return self._create(argv, spec, colon, event, is_return)

    def _create(self, argv: list[str], spec: str, colon: int, event: str | None,
                is_return: bool) -> int:
        self.log_set_index(1)
        filename = spec[:colon]
        path = self.resolve(filename)
        if isinstance(path, int):
            self.log_err(0, ProbeErr.FILE_NOT_FOUND)
            return path
        if not path.regular:
            self.log_err(0, ProbeErr.NO_REGULAR_FILE)
            return -errno.EINVAL
        arg_pos = colon + 1
        arg = spec[arg_pos:]
        ref_ctr_offset = 0
        rctr = arg.find("(")
        if rctr >= 0:
            rend = arg.find(")", rctr)
            if rend < 0:
                self.log_err(arg_pos + len(arg), ProbeErr.REFCNT_OPEN_BRACE)
                return -errno.EINVAL
            if rend + 1 < len(arg):
                self.log_err(arg_pos + rend + 1, ProbeErr.BAD_REFCNT_SUFFIX)
                return -errno.EINVAL
            ret, ref_ctr_offset = kstrtoul(arg[rctr + 1:rend], 0)
            if ret:
                self.log_err(arg_pos + rctr + 1, ProbeErr.BAD_REFCNT)
                return ret
            arg = arg[:rctr]
        ret, arg, suffix = self.parse_return_suffix(arg, arg_pos)
        if ret:
            return ret
        is_return |= suffix
        ret, offset = kstrtoul(arg, 0)
        if ret:
            self.log_err(arg_pos, ProbeErr.BAD_UPROBE_OFFS)
            return ret

        self.log_set_index(0)
        ret, event, group = self.parse_group_event(event, 2, UPROBE_EVENT_SYSTEM)
        if ret:
            return ret
        if not event:
            tail = filename.rsplit("/", 1)[-1]
            cut = min((p for p in (tail.find("."), tail.find("-"), tail.find("_")) if p >= 0),
                      default=-1)
            if cut >= 0:
                tail = tail[:cut]
            event = f"p_{tail}_0x{offset:x}"[:MAX_EVENT_NAME_LEN - 1]

        args = argv[2:]
        tu = TraceUprobe(self, group, event, len(args), is_return, path, filename, offset,
                         ref_ctr_offset)
        for i, a in enumerate(args):
            ctx = ParseContext(flags=(TPARG_FL_RETURN if is_return else 0) | TPARG_FL_USER,
                               log=self.log)
            self.log_set_index(i + 2)
            ret = traceprobe_parse_probe_arg(tu.tp, i, a, ctx)
            traceprobe_finish_parse(ctx)
            if ret:
                return ret
        self.set_probe_format(tu, is_return)
        return self.register_trace_probe(tu)

    # --------------------------------------------------------------- registration
    def register_trace_probe(self, p: TraceUprobe) -> int:
        """register_trace_uprobe(): validate_ref_ctr_offset() first."""
        for t in self.probes():
            if (t.path.ino == p.path.ino and t.offset == p.offset
                    and t.ref_ctr_offset != p.ref_ctr_offset):
                self.kernel.printk("trace_uprobe: Reference counter offset mismatch.")
                return -errno.EINVAL
        return super().register_trace_probe(p)

    def probe_type_differs(self, p: TraceUprobe, old: TraceUprobe) -> bool:
        return p.is_ret != old.is_ret

    def register_probe(self, p: TraceUprobe) -> int:
        return 0        # uprobe_register() happens when the event is enabled

    def unregister_probe(self, p: TraceUprobe) -> None:
        return None

    # --------------------------------------------------------------- enable/disable
    def enable(self, pe: TraceProbeEvent[TraceUprobe], file: EventFile | None) -> int:
        """``probe_event_enable``: trace and perf do not mix."""
        if pe.flags & (TP_FLAG_PROFILE if file is not None else TP_FLAG_TRACE):
            return -errno.EINTR
        return super().enable(pe, file)

    def enable_probes(self, pe: TraceProbeEvent[TraceUprobe]) -> int:
        """``uprobe_register`` sanity checks for every probe of the event."""
        for tu in pe.probes:
            if tu.offset > tu.path.size or tu.ref_ctr_offset % 2:
                return -errno.EINVAL
            if not tu.registered:
                tu.registered = True
                self.nr_registered += 1
            tu.fired.clear()
        return 0

    def disable_probes(self, pe: TraceProbeEvent[TraceUprobe]) -> None:
        for tu in pe.probes:
            if tu.registered:
                tu.registered = False
                self.nr_registered -= 1

    # --------------------------------------------------------------- firing
    def task_hook(self, task: Task) -> None:
        """A task makes a syscall: if it runs a probed file, it passes its uprobes."""
        if not self.nr_registered:
            return
        exe = _task_exe(task)
        for tu in self.probes():
            if not tu.registered or task.pid in tu.fired:
                continue
            if not _runs(task, exe, tu):
                continue
            tu.fired.add(task.pid)
            self.hit(tu)

    def hit(self, tu: TraceUprobe, retval: int = 0) -> None:
        """``uprobe_dispatcher`` (and, for a return probe, ``uretprobe_dispatcher``)."""
        tu.nhits += 1
        pe = tu.event
        if not pe.flags & TP_FLAG_TRACE:
            return
        vaddr = _user_vaddr(tu.path, tu.offset)
        ubase = vaddr - tu.offset
        if tu.is_ret:
            ret_ip = _user_vaddr(tu.path, tu.offset + 0x3B)
            regs = UprobeRegs(ret_ip, ubase, retval)
            head, words = PROBE_RET_HEAD_SIZE, (vaddr, ret_ip)
        else:
            regs = UprobeRegs(vaddr, ubase)
            head, words = PROBE_HEAD_SIZE, (vaddr,)
        comm = self.kernel.sched.current.comm.encode("latin-1", "replace")[:15]
        env = FetchEnv(regs, self.mem, comm, None)
        trace_probe_trace_func(pe, tu.tp, env, head, words, uprobe_process_fetch_insn)


def _task_exe(task: Task) -> str | None:
    """The task's executable, when it is a live host process we may look at."""
    if task.pid <= 0 or task.kthread:
        return None
    try:
        return os.path.realpath(os.readlink(f"/proc/{task.pid}/exe"))
    except OSError:
        return None


def _runs(task: Task, exe: str | None, tu: TraceUprobe) -> bool:
    if exe is not None and exe == tu.path.real:
        return True
    comm = task.comm
    if not comm:
        return False
    # comm is the basename the task was exec'd by: the probed name or its target
    return any(comm == p.rsplit("/", 1)[-1][:15] for p in (tu.filename, tu.path.real))


def boot(kernel: Kernel) -> UprobeEvents:
    """fs_initcall(init_uprobe_trace): register the kind (after the kprobe kind, which
    must see each line first) and watch syscall entries for probed executables."""
    kind = UprobeEvents(kernel)
    kernel.dynevent.register(kind)
    kernel.syscall_hooks.append(kind.task_hook)
    return kind

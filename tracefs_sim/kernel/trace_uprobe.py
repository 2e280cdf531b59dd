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
from typing import TYPE_CHECKING, Any

from .trace_dynevent import DynEvent, DynEvents
from .trace_fprobe import ProbeEvent
from .trace_kprobe import M64, PtRegs, get_data_size, store_trace_args
from .trace_output import Printer, TraceIter
from .trace_probe import (
    MAX_ARGSTR_LEN,
    MAX_EVENT_NAME_LEN,
    MAX_TRACE_ARGS,
    PROBE_PRINT_NORMAL,
    PROBE_PRINT_RETURN,
    TP_FLAG_PROFILE,
    TP_FLAG_TRACE,
    TPARG_FL_RETURN,
    TPARG_FL_USER,
    FetchEnv,
    FetchInsn,
    FetchOp,
    ParseContext,
    ProbeErr,
    TraceProbe,
    _fetch_bottom,
    argv_split,
    compare_arg_type,
    isdigit,
    kstrtoul,
    match_command_args,
    print_args,
    process_fetch_insn,
    set_print_fmt,
    traceprobe_finish_parse,
    traceprobe_parse_event_name,
    traceprobe_parse_probe_arg,
)

if TYPE_CHECKING:
    from .core import Kernel

UPROBE_EVENT_SYSTEM = "uprobes"
TRACE_EVENT_FL_UPROBE = 1 << 7
UPROBE_HEAD_SIZE = 16       # trace_entry + vaddr[0]
URETPROBE_HEAD_SIZE = 24    # trace_entry + vaddr[0] + vaddr[1]
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

    def __init__(self, mem: Any) -> None:
        self.mem = mem

    def read(self, addr: int, size: int, user: bool = False) -> bytes | None:
        return self.mem.read(addr, size, True) if self.mem is not None else None

    def read_str(self, addr: int, maxlen: int, user: bool = False) -> bytes | None:
        return self.mem.read_str(addr, maxlen, True) if self.mem is not None else None


def uprobe_process_fetch_insn(code: list[FetchInsn], env: FetchEnv, dest: bytearray | None,
                              doff: int, base: int) -> int:
    """trace_uprobe.c ``process_fetch_insn``: registers, the user stack, file offsets."""
    insn = code[0]
    op = insn.op
    regs: Any = env.regs
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
        val = (getattr(regs, "ubase", 0) + insn.immediate) & M64
    else:
        return process_fetch_insn(code, env, dest, doff, base)
    return _fetch_bottom(code, 1, val & M64, env, dest, doff, base, None)


class UprobeRegs(PtRegs):
    """User pt_regs at the breakpoint; ``ubase`` = bp_addr - probe offset."""

    __slots__ = ("ubase",)

    def __init__(self, ip: int, ubase: int, retval: int | None = None) -> None:
        super().__init__(None, ip, 0, retval, user=True)
        self.ubase = ubase


# --------------------------------------------------------------------------- events
class UprobePrinter(Printer):
    """``print_uprobe_event``: raw user addresses, no symbols."""

    def __init__(self, pe: ProbeEvent) -> None:
        self.pe = pe

    def trace(self, it: TraceIter) -> str:
        pe = self.pe
        if not pe.probes:
            return ""
        tp = pe.primary().tp
        buf, off = it.buf, it.off
        if pe.call.is_return:
            func = _Q.unpack_from(buf, off + 8)[0]
            ret_ip = _Q.unpack_from(buf, off + 16)[0]
            head = f"{pe.name}: (0x{ret_ip:x} <- 0x{func:x})"
            data = off + URETPROBE_HEAD_SIZE
        else:
            head = f"{pe.name}: (0x{_Q.unpack_from(buf, off + 8)[0]:x})"
            data = off + UPROBE_HEAD_SIZE
        return head + print_args(tp.args, buf, data, off, lambda a: f"0x{a:x}") + "\n"

    def raw(self, it: TraceIter) -> str:
        return ""

    def hex(self, it: TraceIter) -> str:
        return ""

    def binary(self, it: TraceIter) -> bytes:
        return b""


class TraceUprobe(DynEvent):
    """``struct trace_uprobe``."""

    def __init__(self, kind: UprobeEvents, group: str, event: str, nargs: int,
                 is_return: bool) -> None:
        super().__init__(kind)
        self.filename = ""
        self.path: SimPath | None = None
        self.offset = 0
        self.ref_ctr_offset = 0
        self.nhits = 0
        self.is_ret = is_return
        self.registered = False          # uprobe_register() done (event enabled)
        self.fired: set[int] = set()     # pids that already passed the breakpoint
        self.tp = TraceProbe(nr_args=nargs)
        self.event = ProbeEvent(kind, event, group)   # type: ignore[arg-type]
        self.event.probes.append(self)                 # type: ignore[arg-type]
        self.event.call.is_return = is_return
        self.event.call.flags = TRACE_EVENT_FL_UPROBE
        self.event.call.printer = UprobePrinter(self.event)

    @property
    def name(self) -> str:
        return self.event.name

    @property
    def group(self) -> str:
        return self.event.group


class UprobeEvents:
    """The ``trace_uprobe_ops`` dyn_event kind of one kernel."""

    def __init__(self, dyn: DynEvents, *, events: Any = None, kernel: Kernel | None = None,
                 resolve: Callable[[str], SimPath | int] = kern_path) -> None:
        self.dyn = dyn
        self.events = events
        self.kernel = kernel
        self.resolve = resolve
        self.nr_enabled = 0

    def _log_set(self, index: int) -> None:
        self.dyn.probe_log.set_index(index)

    def _log_err(self, offset: int, err: ProbeErr) -> None:
        self.dyn.probe_log.err(offset, err)

    def probes(self) -> list[TraceUprobe]:
        return [ev for ev in self.dyn.events if isinstance(ev, TraceUprobe)]

    # --------------------------------------------------------------- dyn_event ops
    def create(self, raw_command: str) -> int:
        argv = argv_split(raw_command)
        if not argv:
            return 0
        return self._create(argv)

    def show(self, ev: DynEvent) -> str:
        assert isinstance(ev, TraceUprobe)
        out = [f"{'r' if ev.is_ret else 'p'}:{ev.group}/{ev.name} {ev.filename}:0x{ev.offset:016x}"]
        if ev.ref_ctr_offset:
            out.append(f"(0x{ev.ref_ctr_offset:x})")
        for a in ev.tp.args:
            out.append(f" {a.name}={a.comm}")
        out.append("\n")
        return "".join(out)

    def is_busy(self, ev: DynEvent) -> bool:
        assert isinstance(ev, TraceUprobe)
        return ev.event.is_enabled()

    def free(self, ev: DynEvent) -> int:
        assert isinstance(ev, TraceUprobe)
        return self._unregister_trace_uprobe(ev)

    def match(self, system: str | None, event: str, argv: list[str], ev: DynEvent) -> bool:
        assert isinstance(ev, TraceUprobe)
        if event and ev.name != event:
            return False
        if system is not None and ev.group != system:
            return False
        if not argv:
            return True
        fn = ev.filename
        if not argv[0].startswith(fn) or argv[0][len(fn):len(fn) + 1] != ":":
            return False
        head = f"0x{ev.offset:016x}"
        if ev.ref_ctr_offset:
            head += f"(0x{ev.ref_ctr_offset:x})"
        if head[:MAX_ARGSTR_LEN] != argv[0][len(fn) + 1:]:
            return False
        return match_command_args(ev.tp, argv[1:])

    # --------------------------------------------------------------- files
    def profile_text(self) -> str:
        """``uprobe_profile``: ``"  %s %-44s %15lu\\n"`` (file, event, hits)."""
        return "".join(f"  {tu.filename} {tu.name:<44} {tu.nhits:>15}\n" for tu in self.probes())

    def run_command(self, raw_command: str) -> int:
        """``create_or_delete_trace_uprobe``."""
        if raw_command[:1] == "-":
            return self.dyn.release(raw_command, self)
        ret = self.dyn.create_of(raw_command, self)
        return -errno.EINVAL if ret == -errno.ECANCELED else ret

    # --------------------------------------------------------------- parsing
    def _create(self, argv: list[str]) -> int:
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
        log = self.dyn.probe_log
        log.init("trace_uprobe", argv)
        try:
            return self._create_locked(argv, spec, colon, event, is_return)
        finally:
            log.clear()

    def _create_locked(self, argv: list[str], spec: str, colon: int, event: str | None,
                       is_return: bool) -> int:
        self._log_set(1)
        filename = spec[:colon]
        path = self.resolve(filename)
        if isinstance(path, int):
            self._log_err(0, ProbeErr.FILE_NOT_FOUND)
            return path
        if not path.regular:
            self._log_err(0, ProbeErr.NO_REGULAR_FILE)
            return -errno.EINVAL
        arg_pos = colon + 1
        arg = spec[arg_pos:]
        ref_ctr_offset = 0
        rctr = arg.find("(")
        if rctr >= 0:
            rend = arg.find(")", rctr)
            if rend < 0:
                self._log_err(arg_pos + len(arg), ProbeErr.REFCNT_OPEN_BRACE)
                return -errno.EINVAL
            if rend + 1 < len(arg):
                self._log_err(arg_pos + rend + 1, ProbeErr.BAD_REFCNT_SUFFIX)
                return -errno.EINVAL
            ret, ref_ctr_offset = kstrtoul(arg[rctr + 1:rend], 0)
            if ret:
                self._log_err(arg_pos + rctr + 1, ProbeErr.BAD_REFCNT)
                return ret
            arg = arg[:rctr]
        pct = arg.find("%")
        if pct >= 0:
            if arg[pct:] == "%return":
                arg = arg[:pct]
                is_return = True
            else:
                self._log_err(arg_pos + pct, ProbeErr.BAD_ADDR_SUFFIX)
                return -errno.EINVAL
        ret, offset = kstrtoul(arg, 0)
        if ret:
            self._log_err(arg_pos, ProbeErr.BAD_UPROBE_OFFS)
            return ret

        self._log_set(0)
        group = UPROBE_EVENT_SYSTEM
        if event is not None:
            ret, ev_name, grp = traceprobe_parse_event_name(event, 2, self.dyn.probe_log)
            if ret:
                return ret
            event = ev_name
            if grp is not None:
                group = grp
        if not event:
            tail = filename.rsplit("/", 1)[-1]
            cut = min((p for p in (tail.find("."), tail.find("-"), tail.find("_")) if p >= 0),
                      default=-1)
            if cut >= 0:
                tail = tail[:cut]
            event = f"p_{tail}_0x{offset:x}"[:MAX_EVENT_NAME_LEN - 1]

        args = argv[2:]
        tu = TraceUprobe(self, group, event, len(args), is_return)
        tu.offset = offset
        tu.ref_ctr_offset = ref_ctr_offset
        tu.path = path
        tu.filename = filename
        for i, a in enumerate(args):
            ctx = ParseContext(flags=(TPARG_FL_RETURN if is_return else 0) | TPARG_FL_USER,
                               log=self.dyn.probe_log)
            self._log_set(i + 2)
            ret = traceprobe_parse_probe_arg(tu.tp, i, a, ctx)
            traceprobe_finish_parse(ctx)
            if ret:
                return ret
        tu.event.call.print_fmt = set_print_fmt(
            tu.tp, PROBE_PRINT_RETURN if is_return else PROBE_PRINT_NORMAL)
        return self._register_trace_uprobe(tu)

    # --------------------------------------------------------------- registration
    def _find(self, event: str, group: str) -> TraceUprobe | None:
        for tu in self.probes():
            if tu.name == event and tu.group == group:
                return tu
        return None

    def _register_trace_uprobe(self, tu: TraceUprobe) -> int:
        assert tu.path is not None
        for t in self.probes():     # validate_ref_ctr_offset()
            if (t.path is not None and t.path.ino == tu.path.ino and t.offset == tu.offset
                    and t.ref_ctr_offset != tu.ref_ctr_offset):
                if self.kernel is not None:
                    self.kernel.printk("trace_uprobe: Reference counter offset mismatch.")
                return -errno.EINVAL
        old = self._find(tu.name, tu.group)
        if old is not None:
            if tu.is_ret != old.is_ret:
                self._log_set(0)
                self._log_err(0, ProbeErr.DIFF_PROBE_TYPE)
                return -errno.EEXIST
            return self._append(tu, old)
        if self.events is not None:
            ret = self.events.add_event_call(tu.event.call)
            if ret:
                if ret == -errno.EEXIST:
                    self._log_set(0)
                    self._log_err(0, ProbeErr.EVENT_EXIST)
                elif self.kernel is not None:
                    self.kernel.printk(f"trace_uprobe: Failed to register probe event({ret})")
                return ret
        self.dyn.add(tu)
        return 0

    def _append(self, tu: TraceUprobe, to: TraceUprobe) -> int:
        ret = compare_arg_type(tu.tp, to.tp)
        if ret:
            self._log_set(ret + 1)
            self._log_err(0, ProbeErr.DIFF_ARG_TYPE)
            return -errno.EEXIST
        assert tu.path is not None
        for o in to.event.probes:
            assert isinstance(o, TraceUprobe)
            if o.path is None or o.path.ino != tu.path.ino or o.offset != tu.offset:
                continue
            if all(o.tp.args[i].comm == tu.tp.args[i].comm for i in range(o.tp.nr_args)):
                self._log_set(0)
                self._log_err(0, ProbeErr.SAME_PROBE)
                return -errno.EEXIST
        tu.event = to.event
        to.event.probes.append(tu)   # type: ignore[arg-type]
        self.dyn.add(tu)
        return 0

    def _unregister_trace_uprobe(self, tu: TraceUprobe) -> int:
        pe = tu.event
        if len(pe.probes) <= 1:
            if pe.call.refcnt:
                return -errno.EBUSY
            if self.events is not None:
                ret = self.events.remove_event_call(pe.call)
                if ret:
                    return ret
        self.dyn.remove(tu)
        if tu in pe.probes:
            pe.probes.remove(tu)   # type: ignore[arg-type]
        return 0

    # --------------------------------------------------------------- enable/disable
    @staticmethod
    def _uprobe_register(tu: TraceUprobe) -> int:
        """``uprobe_register`` sanity checks."""
        assert tu.path is not None
        if tu.offset > tu.path.size:
            return -errno.EINVAL
        if tu.ref_ctr_offset % 2:
            return -errno.EINVAL
        tu.registered = True
        tu.fired.clear()
        return 0

    def enable(self, pe: ProbeEvent, file: Any) -> int:
        """``probe_event_enable``."""
        enabled = pe.is_enabled()
        if file is not None:
            if pe.flags & TP_FLAG_PROFILE:
                return -errno.EINTR
            pe.files.append(file)
            pe.flags |= TP_FLAG_TRACE
        else:
            if pe.flags & TP_FLAG_TRACE:
                return -errno.EINTR
            pe.flags |= TP_FLAG_PROFILE
        if enabled:
            return 0
        for tu in pe.probes:
            assert isinstance(tu, TraceUprobe)
            ret = self._uprobe_register(tu)
            if ret:
                self._disable_all(pe)
                if file is not None:
                    pe.files = [f for f in pe.files if f is not file]
                    if not pe.files:
                        pe.flags &= ~TP_FLAG_TRACE
                else:
                    pe.flags &= ~TP_FLAG_PROFILE
                return ret
        self.nr_enabled += 1
        return 0

    def _disable_all(self, pe: ProbeEvent) -> None:
        for tu in pe.probes:
            assert isinstance(tu, TraceUprobe)
            tu.registered = False

    def disable(self, pe: ProbeEvent, file: Any) -> int:
        """``probe_event_disable``."""
        if not pe.is_enabled():
            return 0
        if file is not None:
            if not any(f is file for f in pe.files):
                return 0
            pe.files = [f for f in pe.files if f is not file]
            if not pe.files:
                pe.flags &= ~TP_FLAG_TRACE
        else:
            pe.flags &= ~TP_FLAG_PROFILE
        if not pe.is_enabled():
            self._disable_all(pe)
            self.nr_enabled = max(0, self.nr_enabled - 1)
        return 0

    # --------------------------------------------------------------- firing
    def task_hook(self, task: Any) -> None:
        """A task makes a syscall: if it runs a probed file, it passes its uprobes."""
        if not self.nr_enabled:
            return
        exe = _task_exe(task)
        for tu in self.probes():
            if not tu.registered or tu.path is None or task.pid in tu.fired:
                continue
            if not _runs(task, exe, tu):
                continue
            tu.fired.add(task.pid)
            self.hit(tu)

    def hit(self, tu: TraceUprobe, retval: int = 0) -> None:
        """``uprobe_dispatcher`` (and, for a return probe, ``uretprobe_dispatcher``)."""
        assert tu.path is not None
        tu.nhits += 1
        vaddr = _user_vaddr(tu.path, tu.offset)
        ubase = vaddr - tu.offset
        if not tu.event.flags & TP_FLAG_TRACE:
            return
        if tu.is_ret:
            ret_ip = _user_vaddr(tu.path, tu.offset + 0x3B)
            regs = UprobeRegs(ret_ip, ubase, retval)
            head, words = URETPROBE_HEAD_SIZE, (vaddr, ret_ip)
        else:
            regs = UprobeRegs(vaddr, ubase)
            head, words = UPROBE_HEAD_SIZE, (vaddr,)
        env = self._env(regs)
        for file in list(tu.event.files):
            self._write(tu, file, env, head, words)

    def _env(self, regs: UprobeRegs) -> FetchEnv:
        k = self.kernel
        comm = b""
        mem: Any = None
        if k is not None:
            comm = k.sched.current.comm.encode("latin-1", "replace")[:15]
            mem = getattr(k, "mem", None)
        return FetchEnv(regs, _UserMem(mem), comm, None)

    def _write(self, tu: TraceUprobe, file: Any, env: FetchEnv, head: int,
               words: tuple[int, ...]) -> None:
        if getattr(file, "soft_disabled", False):
            return
        k = self.kernel
        if k is None:
            return
        tr = file.tr
        dsize = get_data_size(tu.tp, env, uprobe_process_fetch_insn)
        size = head + tu.tp.size + dsize
        cpu = k.sched.cpu
        off = tr.event_reserve(cpu, tu.event.call.type_id, size)
        if off < 0:
            return
        buf = tr.event_buf(cpu)
        buf[off + 8:off + size] = bytes(size - 8)
        for i, w in enumerate(words):
            _Q.pack_into(buf, off + 8 + 8 * i, w & M64)
        store_trace_args(buf, off + head, tu.tp, env, head, dsize, uprobe_process_fetch_insn)
        commit = getattr(file, "commit", None)
        if commit is not None:
            commit(cpu, off, size)
        else:
            tr.event_commit(cpu)


def _task_exe(task: Any) -> str | None:
    """The task's executable, when it is a live host process we may look at."""
    pid = getattr(task, "pid", 0)
    if pid <= 0 or getattr(task, "kthread", False):
        return None
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def _runs(task: Any, exe: str | None, tu: TraceUprobe) -> bool:
    assert tu.path is not None
    if exe is not None and exe == tu.path.real:
        return True
    comm = getattr(task, "comm", "")
    if not comm:
        return False
    # comm is the basename the task was exec'd by: the probed name or its target
    return any(comm == p.rsplit("/", 1)[-1][:15] for p in (tu.filename, tu.path.real))


def boot(kernel: Kernel) -> UprobeEvents:
    """fs_initcall(init_uprobe_trace): register the kind (after the kprobe kind, which
    must see each line first) and watch syscall entries for probed executables."""
    kind = UprobeEvents(kernel.dynevent, events=kernel.events, kernel=kernel)
    kernel.dynevent.register(kind)
    kernel.syscall_hooks.append(kind.task_hook)
    return kind

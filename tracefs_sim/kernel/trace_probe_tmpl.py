"""The probe-event runtime shared by every probe kind (kernel/trace/trace_probe_tmpl.h,
and the ``trace_probe_print_args`` half of trace_probe.c).

What a probe does when it fires: run each argument's fetch program (the common
``process_fetch_insn`` here; kprobe and uprobe events pass their own, which add
registers, the user stack and file offsets, and fall back to this one), size the
dynamic data (``get_data_size``), store the arguments into the record
(``store_trace_args``), and write one record per event file through the event record
path (``trace_probe_write``).  The printers of a probe event print its head and then the
arguments the same way for every kind (``print_args``).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from .trace_events import (
    TraceEventPrinter,
    trace_event_buffer_commit,
    trace_event_buffer_reserve,
    trace_trigger_soft_disabled,
)
from .trace_events_h import FILTER_DYN_STRING, FILTER_RDYN_STRING, FILTER_STATIC_STRING, Field
from .trace_flags import ITER_SYM_OFFSET
from .trace_output import TraceIter
from .trace_probe import (
    FAULT_STRING,
    MAX_STRING_SIZE,
    PROBE_HEAD_SIZE,
    PROBE_RET_HEAD_SIZE,
    FetchEnv,
    FetchInsn,
    FetchOp,
    FetchType,
    ProbeArg,
    ProbeRegs,
    TraceProbe,
    TraceProbeEvent,
)

if TYPE_CHECKING:
    from .trace_events import EventFile

FetchFn = Callable[[list[FetchInsn], FetchEnv, "bytearray | None", int, int], int]
_Q = struct.Struct("<Q")
_M64 = 0xFFFFFFFFFFFFFFFF


class _Fault(Exception):
    pass


def _mem_ulong(env: FetchEnv, addr: int, user: bool) -> int:
    data = env.mem.read(addr & _M64, 8, user)
    if data is None or len(data) < 8:
        raise _Fault
    return int.from_bytes(data, "little")


def _strsrc(env: FetchEnv, addr: int, op: FetchOp, insn: FetchInsn) -> bytes | None:
    """The bytes (with NUL) a string store would copy, or None on fault."""
    if isinstance(insn.data, bytes) and insn.op == FetchOp.DATA:
        return insn.data
    if op == FetchOp.ST_SYMSTR:
        return env.sprint_symbol(addr & _M64).encode() + b"\0"
    s = env.mem.read_str(addr & _M64, MAX_STRING_SIZE, op == FetchOp.ST_USTRING)
    if s is None:
        return None
    return s + b"\0"


def process_fetch_insn(code: list[FetchInsn], env: FetchEnv, dest: bytearray | None,
                       doff: int, base: int) -> int:
    """Run one argument's fetch program.

    With ``dest`` None, return the dynamic (string) size needed; otherwise store at
    ``dest[doff:]`` (``base`` = offset of the entry start, for __data_loc) and return the
    dynamic bytes consumed (>= 0) or -errno.
    """
    pc = 0
    datap: bytes | None = None
    insn = code[pc]
    if insn.op == FetchOp.NOP_SYMBOL:
        pc += 1
        insn = code[pc]
    op = insn.op
    if op == FetchOp.STACK:
        val = env.regs.kernel_stack_nth(insn.param)
    elif op == FetchOp.STACKP:
        val = env.regs.stack_pointer()
    elif op == FetchOp.RETVAL:
        val = env.regs.return_value()
    elif op == FetchOp.ARG:
        val = env.regs.get_kernel_argument(insn.param)
    elif op == FetchOp.EDATA:
        ed = env.edata or bytearray(insn.offset + 8)
        val = int.from_bytes(ed[insn.offset:insn.offset + 8], "little")
    elif op == FetchOp.IMM:
        val = insn.immediate
    elif op == FetchOp.COMM:
        val = 0
        datap = env.comm + b"\0"
    elif op == FetchOp.DATA:
        val = 0
        datap = insn.data
    elif op == FetchOp.TP_ARG:
        val, datap = _get_event_field(insn.data, env)
    else:
        return -errno.EILSEQ
    val &= _M64
    pc += 1
    return process_fetch_insn_bottom(code, pc, val, env, dest, doff, base, datap)


def _get_event_field(f: Field, env: FetchEnv) -> tuple[int, bytes | None]:
    """trace_eprobe.c ``get_event_field``: the field's value, or for a string field its
    address in the record (and the string itself, which a string store copies)."""
    rec = env.rec or b""
    off = f.offset
    if f.filter_type in (FILTER_DYN_STRING, FILTER_RDYN_STRING, FILTER_STATIC_STRING):
        if f.filter_type == FILTER_STATIC_STRING:
            start, end = off, off + f.size
        else:
            loc = int.from_bytes(rec[off:off + 4], "little")
            start = (loc & 0xFFFF) + (off + 4 if f.filter_type == FILTER_RDYN_STRING else 0)
            end = start + (loc >> 16)
        raw = bytes(rec[start:end])
        nul = raw.find(b"\0")
        return env.rec_addr + start, (raw if nul < 0 else raw[:nul]) + b"\0"
    size = f.size if f.size in (1, 2, 4) else 8
    return int.from_bytes(rec[off:off + size], "little", signed=bool(f.is_signed)), None



def process_fetch_insn_bottom(code: list[FetchInsn], pc: int, val: int, env: FetchEnv,
                              dest: bytearray | None, doff: int, base: int,
                              datap: bytes | None) -> int:
    """The common stages after a kind fetched the first value (trace_probe_tmpl.h):
    dereferences, the store, bitfield and array handling."""
    total = 0
    ret = 0
    i = 0
    loc = 0
    lval = val
    while True:  # stage2
        try:
            while code[pc].op in (FetchOp.DEREF, FetchOp.UDEREF):
                lval = val
                val = _mem_ulong(env, val + code[pc].offset, code[pc].op == FetchOp.UDEREF)
                datap = None
                pc += 1
        except _Fault:
            return -errno.EFAULT
        s3 = pc
        while True:  # stage3
            insn = code[pc]
            op = insn.op
            if dest is None:
                if op not in (FetchOp.ST_STRING, FetchOp.ST_USTRING, FetchOp.ST_SYMSTR):
                    return -errno.EILSEQ
                src = datap if datap is not None else _strsrc(env, val + insn.offset, op, insn)
                ret = len(src) if src is not None else 0
                if op != FetchOp.ST_SYMSTR and src is None:
                    ret = -errno.EFAULT
                pc += 1
            else:
                if op == FetchOp.ST_RAW:
                    size = insn.size
                    dest[doff:doff + size] = (val & ((1 << (size * 8)) - 1)).to_bytes(size, "little")
                elif op in (FetchOp.ST_MEM, FetchOp.ST_UMEM):
                    data = env.mem.read((val + insn.offset) & _M64, insn.size,
                                        op == FetchOp.ST_UMEM)
                    if data is not None and len(data) == insn.size:
                        dest[doff:doff + insn.size] = data
                elif op in (FetchOp.ST_STRING, FetchOp.ST_USTRING, FetchOp.ST_SYMSTR):
                    loc = int.from_bytes(dest[doff:doff + 4], "little")
                    maxlen = loc >> 16
                    dpos = base + (loc & 0xFFFF)
                    src = datap if datap is not None else _strsrc(env, val + insn.offset, op, insn)
                    if op == FetchOp.ST_SYMSTR and not maxlen:
                        ret = -errno.ENOMEM
                    elif src is None or not maxlen:
                        ret = -errno.EFAULT if src is None else -errno.ENOSPC
                        # the kernel stores a zero-length loc on fault
                        dest[doff:doff + 4] = (loc & 0xFFFF).to_bytes(4, "little")
                    else:
                        src = src[:maxlen]
                        if src and src[-1:] != b"\0":
                            src = src[:-1] + b"\0"
                        dest[dpos:dpos + len(src)] = src
                        ret = len(src)
                        dest[doff:doff + 4] = ((ret << 16) | (loc & 0xFFFF)).to_bytes(4, "little")
                else:
                    return -errno.EILSEQ
                pc += 1
                if code[pc].op == FetchOp.MOD_BF:
                    bf = code[pc]
                    bs = bf.basesize
                    bits = bs * 8
                    mask = (1 << bits) - 1
                    v = int.from_bytes(dest[doff:doff + bs], "little")
                    v = (v << bf.lshift) & mask
                    v >>= bf.rshift
                    dest[doff:doff + bs] = v.to_bytes(bs, "little")
                    pc += 1
            # array stage
            if code[pc].op == FetchOp.LP_ARRAY:
                if ret < 0:
                    ret = 0
                total += ret
                i += 1
                if i < code[pc].param:
                    s3op = code[s3].op
                    if s3op not in (FetchOp.ST_STRING, FetchOp.ST_USTRING):
                        if dest is not None:
                            doff += code[s3].size
                        val += code[s3].size
                        pc = s3
                        continue  # stage3
                    pc = s3 - 1
                    val = lval + 8
                    if dest is not None:
                        doff += 4
                        consumed = ret
                        ml = (loc >> 16) - consumed
                        of = (loc & 0xFFFF) + consumed
                        dest[doff:doff + 4] = (((ml & 0xFFFF) << 16) | (of & 0xFFFF)).to_bytes(4, "little")
                    break  # back to stage2
                pc += 1
                ret = total
            return ret if code[pc].op == FetchOp.END else -errno.EILSEQ


def get_data_size(tp: TraceProbe, env: FetchEnv, fetch: FetchFn = process_fetch_insn) -> int:
    """``__get_data_size``: total dynamic bytes of all string args (with the kind's
    ``process_fetch_insn``)."""
    total = 0
    for arg in tp.args:
        if arg.dynamic:
            n = fetch(arg.code, env, None, 0, 0)
            if n > 0:
                total += n
    return total


def store_trace_args(buf: bytearray, data_off: int, tp: TraceProbe, env: FetchEnv,
                     header_size: int, maxlen: int, fetch: FetchFn = process_fetch_insn) -> None:
    """``store_trace_args``: args at ``buf[data_off:]``; dynamic data after ``tp.size``
    (with the kind's ``process_fetch_insn``).

    ``header_size`` is the size of the entry head before ``data_off`` (trace_entry + ip
    or func/ret_ip), so __data_loc offsets are relative to the entry start.
    """
    base = data_off - header_size
    dyn = data_off + tp.size
    for arg in tp.args:
        doff = data_off + arg.offset
        if arg.dynamic:
            buf[doff:doff + 4] = (((maxlen & 0xFFFF) << 16) | ((dyn - base) & 0xFFFF)).to_bytes(4, "little")
        ret = fetch(arg.code, env, buf, doff, base)
        if arg.dynamic and ret > 0:
            dyn += ret
            maxlen -= ret


def store_trace_entry_data(edata: bytearray, tp: TraceProbe, regs: ProbeRegs) -> None:
    """Entry handler of return probes: save the parameters ``$argN`` needs at exit."""
    val = 0
    for insn in tp.entry_arg or ():
        if insn.op == FetchOp.ARG:
            val = regs.get_kernel_argument(insn.param) & _M64
        elif insn.op == FetchOp.ST_EDATA:
            edata[insn.offset:insn.offset + 8] = val.to_bytes(8, "little")
        elif insn.op == FetchOp.END:
            break


# ----------------------------------------------------------------------------- printing
def _print_one(t: FetchType, buf: bytes | bytearray, off: int, ent: int,
               sym: Callable[[int], str]) -> str:
    p = t.ptype
    if p == "string":
        dl = int.from_bytes(buf[off:off + 4], "little")
        ln = dl >> 16
        if not ln:
            return FAULT_STRING
        start = ent + (dl & 0xFFFF)
        raw = bytes(buf[start:start + ln])
        nul = raw.find(b"\0")
        if nul >= 0:
            raw = raw[:nul]
        return '"' + raw.decode("latin-1") + '"'
    if p == "symbol":
        return sym(int.from_bytes(buf[off:off + 8], "little"))
    if p == "char":
        return "'" + chr(buf[off]) + "'"
    size = t.size
    v = int.from_bytes(buf[off:off + size], "little")
    if p[0] == "s" and v >= 1 << (size * 8 - 1):
        v -= 1 << (size * 8)
    if p[0] == "x":
        return f"0x{v:x}"
    return str(v)


def print_args(args: list[ProbeArg], buf: bytes | bytearray, data_off: int, ent: int,
               sym: Callable[[int], str]) -> str:
    """``trace_probe_print_args``: `` name=value`` for each arg (arrays as {a,b})."""
    out = []
    for a in args:
        assert a.type is not None
        out.append(f" {a.name}=")
        if not a.count:
            out.append(_print_one(a.type, buf, data_off + a.offset, ent, sym))
            continue
        items = []
        p = data_off + a.offset
        for _ in range(a.count):
            items.append(_print_one(a.type, buf, p, ent, sym))
            p += a.type.size
        out.append("{" + ",".join(items) + "}")
    return "".join(out)



# ----------------------------------------------------------------------------- the record
def trace_probe_write(file: EventFile, tp: TraceProbe, env: FetchEnv, head: int,
                      words: tuple[int, ...], fetch: FetchFn = process_fetch_insn,
                      depth: int = 0) -> None:
    """One probe record into one event file (__kprobe_trace_func, __kretprobe_trace_func,
    __fentry_trace_func, __fexit_trace_func, __uprobe_trace_func, __eprobe_trace_func):
    the event record path with the head ``words`` (ip, or func and ret_ip) after the
    trace_entry and the fetched arguments after the ``head`` bytes.  ``depth`` is added
    to the record's preempt count (locks the probe handler holds at that point)."""
    if trace_trigger_soft_disabled(file):
        return
    dsize = get_data_size(tp, env, fetch)
    rec = trace_event_buffer_reserve(file, head + tp.size + dsize)
    if rec is None:
        return
    if depth:
        rec[3] = min(rec[3] + depth, 0xFF)
    off = 8
    for w in words:
        _Q.pack_into(rec, off, w & _M64)
        off += 8
    store_trace_args(rec, head, tp, env, head, dsize, fetch)
    trace_event_buffer_commit(file, rec)


def trace_probe_trace_func(pe: TraceProbeEvent, tp: TraceProbe, env: FetchEnv, head: int,
                           words: tuple[int, ...], fetch: FetchFn = process_fetch_insn,
                           depth: int = 0) -> None:
    """kprobe_trace_func() & co: the record into every event file linked to the event."""
    for file in pe.files:
        trace_probe_write(file, tp, env, head, words, fetch, depth)


# ----------------------------------------------------------------------------- printers
class ProbeEventPrinter(TraceEventPrinter):
    """print_<kind>_event(): ``NAME: (HEAD)`` then the arguments of the event's primary
    probe (trace_probe_print_args); the kinds define only ``.trace`` (the raw, hex and
    binary renderings are trace_nop_print's nothing)."""

    def __init__(self, pe: TraceProbeEvent, head_size: int) -> None:
        self.pe = pe
        self.head_size = head_size

    def head(self, it: TraceIter) -> str:
        raise NotImplementedError

    def trace(self, it: TraceIter) -> str:
        pe = self.pe
        if not pe.probes:
            return ""
        out = it.kernel.trace.output
        return (f"{pe.call.name}: ({self.head(it)})"
                + print_args(pe.primary().tp.args, it.buf, it.off + self.head_size, it.off,
                             lambda a: out.sym(a, ITER_SYM_OFFSET) if a else "0x0")
                + "\n")



class FuncEntryPrinter(ProbeEventPrinter):
    """print_kprobe_event / print_fentry_event: ``(SYM+OFF)`` of the probed address."""

    def head(self, it: TraceIter) -> str:
        ip = _Q.unpack_from(it.buf, it.off + 8)[0]
        return it.kernel.trace.output.sym(ip, it.flags | ITER_SYM_OFFSET)


class FuncExitPrinter(ProbeEventPrinter):
    """print_kretprobe_event / print_fexit_event: ``(RET_IP <- FUNC)``."""

    def head(self, it: TraceIter) -> str:
        func = _Q.unpack_from(it.buf, it.off + 8)[0]
        ret_ip = _Q.unpack_from(it.buf, it.off + 16)[0]
        out = it.kernel.trace.output
        return (f"{out.sym(ret_ip, it.flags | ITER_SYM_OFFSET)} <- "
                f"{out.sym(func, it.flags & ~ITER_SYM_OFFSET)}")


def func_probe_printer(pe: TraceProbeEvent, is_return: bool) -> ProbeEventPrinter:
    """The printer of a kprobe or fprobe event (their records and output are alike)."""
    if is_return:
        return FuncExitPrinter(pe, PROBE_RET_HEAD_SIZE)
    return FuncEntryPrinter(pe, PROBE_HEAD_SIZE)

"""The kernel side of ftrace's files (kernel/trace/ftrace.c ``struct ftrace_iterator``):
set_ftrace_filter/notrace (ftrace_regex_open/write/release and t_show) and the
enabled_functions/touched_functions listings.

A filter file's open works on a copy of the ops' hash (an empty one with O_TRUNC);
``RegexIter.release`` swaps it in, as ftrace_regex_release() does.  Reads list the
open's copy, then the array's cached ``:mod:`` filters and its function probes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import KernelError
from .ftrace_ops import (
    FL_CALL_OPS,
    FL_DIRECT,
    FL_ENABLED,
    FL_IPMODIFY,
    FL_MODIFIED,
    FL_REGS,
    FL_TOUCHED,
    FL_TRAMP_EN,
    HASH_FL_MOD,
    OPS_FL_INITIALIZED,
    REF_MAX,
    FtraceHash,
    FtraceOps,
    sym_name,
    sym_ps,
)
from .trace_parser import WordWriter

if TYPE_CHECKING:
    from .ftrace import Ftrace
    from .trace import TraceArray

# ftrace_iterator flags
ITER_FILTER = 1 << 0
ITER_NOTRACE = 1 << 1
ITER_PRINTALL = 1 << 2
ITER_DO_PROBES = 1 << 3
ITER_PROBE = 1 << 4
ITER_MOD = 1 << 5
ITER_ENABLED = 1 << 6
ITER_TOUCHED = 1 << 7
ITER_ADDRS = 1 << 8

# KSYM_SYMBOL_LEN (666 on x86_64) + 4: the parser buffer of the filter files
FTRACE_BUFF_MAX = 670


class RegexIter(WordWriter):
    """The open-file state of set_ftrace_filter/notrace (``struct ftrace_iterator``).

    ``write()`` runs the kernel's ftrace_regex_write (one word per call, returns the
    bytes consumed or raises), ``release()`` is ftrace_regex_release (process the last
    word, swap the hash in), ``show()`` the seq_file text of the per-open hash.
    ``tr`` is ``iter->ops->private``: the trace array of a tracer's ops, None for the
    stack tracer's (its commands then fail with ENODEV).
    """

    def __init__(self, ftrace: Ftrace, tr: TraceArray | None, ops: FtraceOps, flags: int,
                 hash_: FtraceHash, write: bool) -> None:
        super().__init__(FTRACE_BUFF_MAX)
        self.ftrace = ftrace
        self.tr = tr
        self.ops = ops
        self.flags = flags
        self.hash = hash_
        self.write_mode = write
        self.released = False

    @property
    def enable(self) -> bool:
        return not self.flags & ITER_NOTRACE

    def apply_word(self, word: str) -> None:
        self.ftrace.probes.process_regex(self.tr, self.hash, word, self.enable)

    def show(self) -> str:
        return filter_show_text(self.ftrace, self)

    def release(self) -> None:
        """ftrace_regex_release(): last word, then commit the hash (errors ignored)."""
        if self.released:
            return
        self.released = True
        self.apply_last_word()
        if not self.write_mode:
            return
        enable = self.enable
        if enable and self.tr is not None:
            if self.tr.ftrace_state.mod_trace:
                self.hash.flags |= HASH_FL_MOD
            else:
                self.hash.flags &= ~HASH_FL_MOD
        try:
            self.ftrace.update.hash_move_and_update_ops(self.ops, self.hash, enable)
        except KernelError:
            pass


def ftrace_regex_open(ft: Ftrace, tr: TraceArray | None, ops: FtraceOps, flag: int,
                      write: bool, trunc: bool) -> RegexIter:
    """ftrace_regex_open(): the per-open iterator of a filter file of ``ops``."""
    ops.flags |= OPS_FL_INITIALIZED
    st = tr.ftrace_state if tr is not None else None
    if flag & ITER_NOTRACE:
        h = ops.func_hash.notrace_hash
        mods = st.mod_notrace if st is not None else None
    else:
        h = ops.func_hash.filter_hash
        mods = st.mod_trace if st is not None else None
    if write and trunc:
        hash_ = FtraceHash()
        if mods is not None:
            mods.clear()
    else:
        hash_ = h.copy()
    return RegexIter(ft, tr, ops, flag, hash_, write)


def filter_show_text(ft: Ftrace, it: RegexIter) -> str:
    """t_start/t_show over a filter iterator: functions, :mod: lines, probes."""
    parts: list[str] = []
    flag = it.flags
    rec_name = ft.rec_name
    if flag & (ITER_FILTER | ITER_NOTRACE) and it.hash.empty():
        parts.append("#### no functions disabled ####\n" if flag & ITER_NOTRACE
                     else "#### all functions enabled ####\n")
    else:
        parts.extend(rec_name(i) + "\n" for i in sorted(it.hash.ents))
    if it.tr is not None:
        st = it.tr.ftrace_state
        mods = st.mod_notrace if flag & ITER_NOTRACE else st.mod_trace
        for m in mods:
            parts.append(f"{m.func or '*'}:mod:{m.module}\n")
        if flag & ITER_DO_PROBES:
            for probe in st.func_probes:
                h = probe.ops.func_hash.filter_hash
                if h.empty():
                    continue
                po = probe.probe_ops
                for i in ft.records.hash_display_order(h.ents):
                    if po.print is not None:
                        parts.append(po.print(ft.ips[i], po, probe.data))
                    else:
                        parts.append(f"{rec_name(i)}:{sym_name(po.func)}\n")
    return "".join(parts)


def _rec_flags_text(ft: Ftrace, i: int) -> str:
    """t_show of enabled_functions/touched_functions: the record and its state."""
    f = ft.flags[i]
    kallsyms = ft.k.kallsyms
    out = [ft.rec_name(i), f" ({f & REF_MAX})",
           " R" if f & FL_REGS else "  ", " I" if f & FL_IPMODIFY else "  ",
           " D" if f & FL_DIRECT else "  ", " O" if f & FL_CALL_OPS else "  ",
           " M " if f & FL_MODIFIED else "   "]
    if f & FL_TRAMP_EN:
        ops = [op for op in ft.ops_list if op.trampoline and op.func_hash.contains(i)]
        if ops:
            for op in ops:
                out.append(f"\ttramp: {op.trampoline:#x} ({sym_ps(op.func, kallsyms)})")
                out.append(f" ->{sym_ps(op.tramp_func, kallsyms)}")
        else:
            out.append("\ttramp: ERROR!")
    else:
        out.append(f" ->{sym_ps(ft.dispatch.trace_func, kallsyms)}")
    return "".join(out)


def enabled_functions_text(ft: Ftrace) -> str:
    flags = ft.flags
    return "".join(_rec_flags_text(ft, i) + "\n"
                   for i in range(ft.nr_records) if flags[i] & FL_ENABLED)


def touched_functions_text(ft: Ftrace) -> str:
    flags = ft.flags
    return "".join(_rec_flags_text(ft, i) + "\n"
                   for i in range(ft.nr_records) if flags[i] & FL_TOUCHED)

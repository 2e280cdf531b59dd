#!/usr/bin/env python3
"""Generate tracefs_sim/data/ from the captured Linux 6.12 facts in ../shared.

Stdlib only.  Run from anywhere:  scripts/gen_data.py [--shared DIR] [--out DIR]

What it writes (see the MANIFEST.txt it also writes):
  functions.txt.gz        available_filter_functions_addrs.txt verbatim (ftrace rec->ip,
                          name, [module]); available_filter_functions is derived from it.
  kallsyms.txt.gz         every text symbol, /proc/kallsyms order: "<type> <name>[ [mod]]"
  kallsyms_addrs.bin.gz   their addresses, little-endian u64, same order
  btf_protos.tsv.gz       btf-function-prototypes.tsv verbatim
  vmlinux.btf.gz          the raw vmlinux BTF blob
  events.txt.gz           all-event-formats.txt verbatim
  config.txt.gz           the set CONFIG_ lines of the kernel .config
  kconfig.txt             the config symbols the simulator reads (KCONFIG_SYMBOLS), set or
                          not: tracefs_sim/kernel/kconfig.py
  syscalls_x86_64.tsv     the x86_64 syscall table (arch/x86/entry/syscalls/syscall_64.tbl of
                          the kernel source) with each syscall's argument types and names from
                          its syscalls:sys_enter_* format
  plus small verbatim files (README.txt, header_page, …).

The capture has names only for kallsyms (no addresses, no type letters), so
addresses are reconstructed: each traceable function's start comes from its
ftrace address (rec->ip is the start, or start+4 after an IBT endbr64, with 16-byte
function alignment), ``__pfx_X`` sits 16 bytes before ``X`` (CONFIG_FUNCTION_PADDING_BYTES),
and the symbols in between are spread evenly over the gap.  Type letters are a
heuristic (this BTF marks every FUNC static, so it cannot tell t from T).  Weak functions
(type W, absent from the t/T capture but traceable) are inserted at their address.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import re
import sys
from array import array
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REF = "reference/linux-6.12"
CONFIG = "kernel-config-6.12.117+deb12-amd64"
SYSCALL_TBL = "arch/x86/entry/syscalls/syscall_64.tbl"
VERBATIM = (
    "README.txt", "header_page", "header_event", "available_tracers.txt", "uname-a.txt",
    "proc-modules.txt", "event-systems.txt", "available_events.txt",
)
# The config symbols the simulator reads (tracefs_sim/kernel/kconfig.py): the ones whose
# #ifdef in kernel/trace changes a file, a text or an errno the simulator reproduces.
# A symbol absent from the .config (not visible, nothing selects it) is "not set".
KCONFIG_SYMBOLS = (
    "CONFIG_RING_BUFFER_ALLOW_SWAP", "CONFIG_TRACER_SNAPSHOT", "CONFIG_TRACER_SNAPSHOT_PER_CPU_SWAP",
    "CONFIG_TRACER_MAX_TRACE", "CONFIG_STACK_TRACER", "CONFIG_STACKTRACE", "CONFIG_UNWINDER_ORC",
    "CONFIG_FUNCTION_TRACER", "CONFIG_FUNCTION_GRAPH_TRACER", "CONFIG_FUNCTION_GRAPH_RETVAL",
    "CONFIG_FUNCTION_PROFILER", "CONFIG_DYNAMIC_FTRACE", "CONFIG_DYNAMIC_FTRACE_WITH_REGS",
    "CONFIG_DYNAMIC_FTRACE_WITH_ARGS", "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
    "CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS", "CONFIG_HIST_TRIGGERS", "CONFIG_SYNTH_EVENTS",
    "CONFIG_FTRACE_SYSCALLS", "CONFIG_FTRACE_RECORD_RECURSION", "CONFIG_TRACE_EVAL_MAP_FILE",
    "CONFIG_TRACE_EVENT_INJECT", "CONFIG_USER_EVENTS", "CONFIG_BOOTTIME_TRACING",
    "CONFIG_KPROBE_EVENTS", "CONFIG_UPROBE_EVENTS", "CONFIG_FPROBE_EVENTS", "CONFIG_DYNAMIC_EVENTS",
    "CONFIG_PROBE_EVENTS_BTF_ARGS", "CONFIG_KPROBE_EVENTS_ON_NOTRACE", "CONFIG_MODULES",
    "CONFIG_IRQSOFF_TRACER", "CONFIG_PREEMPT_TRACER", "CONFIG_SCHED_TRACER", "CONFIG_HWLAT_TRACER",
    "CONFIG_OSNOISE_TRACER", "CONFIG_TIMERLAT_TRACER", "CONFIG_MMIOTRACE", "CONFIG_BLK_DEV_IO_TRACE",
    "CONFIG_BRANCH_TRACER",
)
PFX = "__pfx_"
PAD = 16            # CONFIG_FUNCTION_PADDING_BYTES
VMLINUX_TAIL_STEP = 0x40   # spacing for symbols after the last known address
MODULE_TAIL_GAP = 0x400    # assumed size of the last traced function of a module
STATIC_PREFIXES = ("trace_event_raw_event_", "perf_trace_", "trace_raw_output_", "__bpf_trace_",
                   "trace_event_get_offsets_", "__se_sys_", "__do_sys_", "__se_compat_sys_",
                   "__do_compat_sys_")


def gz(data: bytes) -> bytes:
    """Deterministic gzip (mtime 0) so regenerating gives identical files."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def parse_ftrace(text: str) -> list[tuple[int, str, str | None]]:
    out = []
    for line in text.splitlines():
        parts = line.split(" ")
        mod = parts[2][1:-1] if len(parts) > 2 else None
        out.append((int(parts[0], 16), parts[1], mod))
    return out


def start_of(ip: int) -> int:
    """Function start from ftrace rec->ip: ip itself, or ip-4 past an endbr64."""
    return ip & ~0xF


def spread(names: list[str], known: dict[int, int], lo: int, hi: int | None) -> list[int]:
    """Addresses for ``names`` given fixed ones in ``known`` (index -> address).

    Unknown symbols between two fixed ones are spread evenly (16-aligned when room
    allows); ``__pfx_X`` directly before ``X`` is X-16.  ``lo`` is the address of a
    virtual symbol before the first one; ``hi`` the bound after the last (None =
    open, use VMLINUX_TAIL_STEP per symbol).
    """
    n = len(names)
    addrs = [0] * n
    fixed = dict(known)
    # a __pfx_ directly before a fixed symbol is fixed too
    for i, a in list(known.items()):
        if i > 0 and names[i - 1] == PFX + names[i] and i - 1 not in fixed:
            fixed[i - 1] = a - PAD
    anchors = sorted(fixed)
    bounds = [(-1, lo)] + [(i, fixed[i]) for i in anchors] + [(n, hi)]
    for (i0, a0), (i1, a1) in zip(bounds, bounds[1:], strict=False):
        if i0 >= 0:
            addrs[i0] = a0
        gap = list(range(i0 + 1, i1))
        if not gap:
            continue
        # units: (pfx index or None, main index)
        units: list[list[int]] = []
        j = 0
        while j < len(gap):
            k = gap[j]
            if j + 1 < len(gap) and names[k] == PFX + names[gap[j + 1]]:
                units.append([k, gap[j + 1]])
                j += 2
            else:
                units.append([k])
                j += 1
        start = a0 + (PAD if i0 >= 0 else 0)
        if a1 is None:
            slot = VMLINUX_TAIL_STEP
        else:
            end = a1
            slot = max(0, (end - start) // len(units))
        for u, unit in enumerate(units):
            base = start + u * slot
            if slot >= 2 * PAD:
                base = (base + PAD - 1) & ~(PAD - 1)
            if len(unit) == 2:
                step = PAD if slot >= 2 * PAD else slot // 2
                addrs[unit[0]] = base
                addrs[unit[1]] = base + step
            else:
                addrs[unit[0]] = base
    return addrs


def build_kallsyms(ks_lines: list[str], ftrace: list[tuple[int, str, str | None]],
                   modules: list[tuple[str, int, int]]
                   ) -> list[tuple[int, str, str, str | None]]:
    """(address, type, name, module) for every text symbol, /proc/kallsyms order."""
    vm_names = []
    mod_syms: dict[str, list[str]] = defaultdict(list)
    order_mods: list[str] = []
    for line in ks_lines:
        if line.endswith("]"):
            name, mod = line[:-1].split(" [")
            if mod not in mod_syms:
                order_mods.append(mod)
            mod_syms[mod].append(name)
        else:
            vm_names.append(line)

    # ---- vmlinux: align traceable functions (address order) with the name list
    pos: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(vm_names):
        pos[name].append(i)
    known: dict[int, int] = {}
    weak: list[tuple[int, str]] = []
    vm_ftrace = [(a, n) for a, n, m in ftrace if m is None]
    cur = 0
    last_addr = start_of(vm_ftrace[0][0]) - 0x2000
    for ip, name in vm_ftrace:
        a = start_of(ip)
        p = pos.get(name, [])
        i = bisect.bisect_left(p, cur)
        # accept only if the index gap fits the address gap (>= 8 bytes a symbol);
        # otherwise the name is a weak (W) symbol missing from the t/T capture
        if i < len(p) and (p[i] - cur) * 8 <= a - last_addr + 64:
            known[p[i]] = a
            cur = p[i] + 1
            last_addr = a
        else:
            weak.append((a, name))
    text_base = start_of(vm_ftrace[0][0]) & ~0x1FFFFF   # KASLR base is 2 MiB aligned
    # _stext and _text both sit at the start of .text
    for i in range(min(2, len(vm_names))):
        if vm_names[i] in ("_stext", "_text"):
            known[i] = text_base
    addrs = spread(vm_names, known, text_base, None)
    out: list[tuple[int, str, str, str | None]] = []
    for a, name in zip(addrs, vm_names, strict=True):
        out.append((a, "", name, None))
    for a, name in weak:
        idx = bisect.bisect_right([x[0] for x in out], a)
        out.insert(idx, (a, "W", name, None))

    # ---- modules: functions first (address order), then __pfx_, then exit text
    mod_ftrace: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for a, n, m in ftrace:
        if m is not None:
            mod_ftrace[m].append((start_of(a), n))
    mod_info = {name: (base, size) for name, base, size in modules}
    for mod in order_mods:
        names = mod_syms[mod]
        base, size = mod_info[mod]
        mains = [n for n in names if not n.startswith(PFX)]
        fmap: dict[str, list[int]] = defaultdict(list)
        for a, n in mod_ftrace.get(mod, []):
            fmap[n].append(a)
        traced = [n for n in mains if fmap.get(n)]
        rest = [n for n in mains if not fmap.get(n)]
        ordered = traced + rest      # untraced module text (exit code) after the rest
        known_m = {}
        for i, n in enumerate(ordered):
            if fmap.get(n):
                known_m[i] = fmap[n].pop(0)
        last = max(known_m.values()) if known_m else base
        tail_start = last + MODULE_TAIL_GAP
        m_addrs = spread(ordered, known_m, base, None)
        addr_of: dict[str, int] = {}
        for i, n in enumerate(ordered):
            if i not in known_m and i >= len(traced):
                m_addrs[i] = tail_start + (i - len(traced)) * VMLINUX_TAIL_STEP
            addr_of.setdefault(n, m_addrs[i])
        end = base + size
        for n in names:
            if n.startswith(PFX) and n[len(PFX):] in addr_of:
                a = addr_of[n[len(PFX):]] - PAD
            else:
                a = addr_of.get(n, end - PAD)
            out.append((min(a, end - 1), "", n, mod))

    names_with_pfx = {n for _a, _t, n, _m in out if n.startswith(PFX)}
    # ---- type letters.  This kernel's BTF has linkage 0 (static) for every FUNC, so
    # it cannot tell t from T; use a heuristic: compiler clones, names that occur
    # more than once and the static helpers the TRACE_EVENT macros generate are t.
    seen: dict[tuple[str, str | None], int] = defaultdict(int)
    for _a, _t, name, mod in out:
        real = name[len(PFX):] if name.startswith(PFX) else name
        seen[(real, mod)] += 1
    letters: dict[tuple[str, str | None], str] = {}
    for key, cnt in seen.items():
        real = key[0]
        if cnt > 2 or "." in real or real.startswith(STATIC_PREFIXES) or (
                cnt == 2 and PFX + real not in names_with_pfx):
            letters[key] = "t"
    res = []
    for a, t, name, mod in out:
        real = name[len(PFX):] if name.startswith(PFX) else name
        res.append((a, t or letters.get((real, mod), "T"), name, mod))
    return res


def syscall_table(tbl: str, formats: str) -> str:
    """``syscalls_x86_64.tsv``: one line per x86_64 syscall number (the x32 numbers left out).

    Columns (tab-separated): nr, name, entry point (``-`` for a number the kernel does not
    implement), ``noreturn`` or ``-``, then one ``TYPE NAME`` column per argument, as the
    syscall's ``sys_enter_*`` format declares it (the event is named after the entry point:
    ``stat`` is ``sys_newstat``, event ``sys_enter_newstat``).
    """
    args: dict[str, list[str]] = {}
    for rec in re.split(r"^== ", formats, flags=re.M):
        head, _, body = rec.partition("\n")
        if not head.startswith("syscalls/sys_enter_"):
            continue
        fields = re.findall(r"field:([^;]*);\toffset:(\d+);", body)
        # the syscall's arguments follow the common fields and __syscall_nr (offset 16 on)
        args[head[len("syscalls/sys_enter_"):]] = [f for f, off in fields if int(off) >= 16]
    lines = ["# nr\tname\tentry\tnoreturn\targ types and names (GENERATED by scripts/gen_data.py)"]
    for line in tbl.splitlines():
        cols = line.split()
        if not cols or cols[0].startswith("#") or cols[1] == "x32":
            continue
        nr, _abi, name = cols[:3]
        entry = cols[3] if len(cols) > 3 and cols[3] != "sys_ni_syscall" else "-"
        noreturn = "noreturn" if cols[-1] == "noreturn" else "-"
        if entry != "-" and entry[len("sys_"):] not in args:
            raise SystemExit(f"{SYSCALL_TBL}: {name}: no syscalls:sys_enter_{entry[4:]} format")
        lines.append("\t".join([nr, name, entry, noreturn, *args.get(entry[len("sys_"):], [])]))
    return "\n".join(lines) + "\n"


def kconfig_text(config: str) -> str:
    """``kconfig.txt``: each of KCONFIG_SYMBOLS as the .config states it, ``CONFIG_X=value``
    or ``# CONFIG_X is not set`` (also for a symbol the .config does not mention)."""
    values: dict[str, str] = {}
    for line in config.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            name, _, value = line.partition("=")
            values[name] = value
    lines = [f"# the config symbols tracefs_sim reads, from {CONFIG} (GENERATED by scripts/gen_data.py)"]
    for name in KCONFIG_SYMBOLS:
        lines.append(f"{name}={values[name]}" if name in values else f"# {name} is not set")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"), help="the shared/ folder")
    ap.add_argument("--ksrc", default=str(ROOT.parent / "ksrc" / "linux-source-6.12"),
                    help="the Linux 6.12 source tree (for the x86_64 syscall table)")
    ap.add_argument("--out", default=str(ROOT / "tracefs_sim" / "data"), help="output folder")
    args = ap.parse_args()
    ref = Path(args.shared) / REF
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}

    def write(name: str, data: bytes) -> None:
        (out / name).write_bytes(data)
        written[name] = len(data)

    ff_addrs = (ref / "available_filter_functions_addrs.txt").read_bytes()
    ff_plain = (ref / "available_filter_functions.txt").read_bytes()
    derived = b"".join(line.split(b" ", 1)[1] + b"\n" for line in ff_addrs.splitlines())
    if derived != ff_plain:
        print("warning: available_filter_functions is not the addrs list minus addresses",
              file=sys.stderr)
    write("functions.txt.gz", gz(ff_addrs))

    blob = (ref / "vmlinux.btf").read_bytes()
    write("vmlinux.btf.gz", gz(blob))
    write("btf_protos.tsv.gz", gz((ref / "btf-function-prototypes.tsv").read_bytes()))
    write("events.txt.gz", gz((ref / "all-event-formats.txt").read_bytes()))
    for name in VERBATIM:
        write(name, (ref / name).read_bytes())
    cfg = [ln for ln in (ref / CONFIG).read_text().splitlines() if ln.startswith("CONFIG_")]
    write("config.txt.gz", gz(("\n".join(cfg) + "\n").encode()))
    write("kconfig.txt", kconfig_text((ref / CONFIG).read_text()).encode())
    formats = (ref / "all-event-formats.txt").read_text()
    write("syscalls_x86_64.tsv",
          syscall_table((Path(args.ksrc) / SYSCALL_TBL).read_text(), formats).encode())

    modules = []
    for line in (ref / "proc-modules.txt").read_text().splitlines():
        f = line.split()
        modules.append((f[0], int(f[-1], 16), int(f[1])))
    ftrace = parse_ftrace(ff_addrs.decode())
    ks_lines = (ref / "kallsyms-text-names.txt").read_text().splitlines()
    syms = build_kallsyms(ks_lines, ftrace, modules)
    text = "".join(f"{t} {n}{f' [{m}]' if m else ''}\n" for _a, t, n, m in syms)
    write("kallsyms.txt.gz", gz(text.encode()))
    arr = array("Q", (a for a, *_ in syms))
    if sys.byteorder != "little":
        arr.byteswap()
    write("kallsyms_addrs.bin.gz", gz(arr.tobytes()))

    counts = defaultdict(int)
    for _a, t, _n, _m in syms:
        counts[t] += 1
    manifest = [
        "tracefs_sim/data — GENERATED by scripts/gen_data.py from ../shared/reference/linux-6.12",
        "(Debian linux-image-6.12.117+deb12-amd64).  Do not edit; rerun the script.",
        "",
        "functions.txt.gz       available_filter_functions_addrs verbatim: '<rec->ip hex> <name>[ [mod]]'",
        "                       (43,280 lines, order and duplicates kept; the plain list drops column 1)",
        "kallsyms.txt.gz        text symbols in /proc/kallsyms order: '<t|T|W> <name>[ [mod]]'",
        f"                       ({len(syms)} symbols: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        + "; W = weak traceable functions the t/T capture lacks)",
        "kallsyms_addrs.bin.gz  u64 little-endian address of each kallsyms.txt line.  Reconstructed:",
        "                       ftrace rec->ip & ~0xf for traceable functions, __pfx_X = X-16, others",
        "                       spread between known addresses; t/T letters are a heuristic",
        "vmlinux.btf.gz         raw /sys/kernel/btf/vmlinux",
        "btf_protos.tsv.gz      btf-function-prototypes.tsv: name, ret type, (param type, name)*",
        "events.txt.gz          all-event-formats.txt: each events/<sys>/<event>/format after '== sys/event'",
        "config.txt.gz          CONFIG_ lines that are set in the kernel .config",
        "kconfig.txt            the config symbols the simulator reads, set or not (kernel/kconfig.py)",
        "syscalls_x86_64.tsv    x86_64 syscalls: nr, name, entry point, noreturn, then the argument",
        "                       'TYPE NAME' columns of its syscalls:sys_enter_* format",
        "available_events.txt, event-systems.txt, README.txt, header_page, header_event,",
        "available_tracers.txt, uname-a.txt, proc-modules.txt: verbatim copies",
        "",
        "sizes (bytes): " + ", ".join(f"{k}={v}" for k, v in sorted(written.items())),
    ]
    write("MANIFEST.txt", ("\n".join(manifest) + "\n").encode())
    total = sum(written.values())
    print(f"wrote {len(written)} files, {total} bytes to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

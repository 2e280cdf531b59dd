"""A port of the kernel's samples/fprobe/fprobe_example.c to the simulated kernel.

Load it into a running mount:

    scripts/mount /tmp/t --module examples/fprobe_example.py --module-arg symbol='vfs_read' \\
        --module-arg use_trace=1

Parameters as the C module's: ``symbol`` (probed symbol(s): comma separated, or a
wildcard pattern), ``nosymbol`` (not-probed pattern), ``stackdump`` (print a backtrace),
``use_trace`` (trace_printk into the trace buffer instead of printk to the kernel log).
"""

from __future__ import annotations

from typing import Any

from tracefs_sim.kernel.fprobe import Fprobe

BACKTRACE_DEPTH = 16
MODNAME = "fprobe_example"


class _State:
    kernel: Any = None
    probe: Fprobe | None = None
    nhit = 0
    stackdump = True
    use_trace = False
    symbol = ""


state = _State()


def _out(kernel: Any, func: Any, text: str) -> None:
    if state.use_trace:
        kernel.trace.trace_printk(text + "\n", kernel.module_symbol(func, MODNAME))
    else:
        kernel.printk(f"{func.__name__}: {text}")


def _ps(kernel: Any, addr: int) -> str:
    return kernel.kallsyms.format_pS(addr)


def show_backtrace(kernel: Any) -> None:
    stack = kernel.workload.sites.current_stack()[2:2 + BACKTRACE_DEPTH]
    for addr in stack:
        kernel.printk(f"{' ' * 24}{_ps(kernel, addr)}")


def sample_entry_handler(fp: Fprobe, ip: int, ret_ip: int, regs: Any, data: Any) -> int:
    k = state.kernel
    _out(k, sample_entry_handler, f"Enter <{_ps(k, ip)}> ip = 0x{ip:x}")
    state.nhit += 1
    if state.stackdump:
        show_backtrace(k)
    return 0


def sample_exit_handler(fp: Fprobe, ip: int, ret_ip: int, regs: Any, data: Any) -> None:
    k = state.kernel
    _out(k, sample_exit_handler,
         f"Return from <{_ps(k, ip)}> ip = 0x{ip:x} to rip = 0x{ret_ip:x} ({_ps(k, ret_ip)})")
    state.nhit += 1
    if state.stackdump:
        show_backtrace(k)


def _bool(v: Any) -> bool:
    return str(v).lower() in ("1", "y", "yes", "true", "on")


def init_module(kernel: Any, symbol: str = "kernel_clone", nosymbol: str = "",
                stackdump: Any = True, use_trace: Any = False) -> int:
    state.kernel = kernel
    state.stackdump = _bool(stackdump)
    state.use_trace = _bool(use_trace)
    state.nhit = 0
    fp = Fprobe(sample_entry_handler, sample_exit_handler)
    core = kernel.fprobe
    if "*" in symbol:
        ret = core.register_fprobe(fp, symbol, nosymbol or None)
    elif "," not in symbol:
        ret = core.register_fprobe_syms(fp, [symbol])
    else:
        syms = symbol.split(",")
        kernel.printk(f"fprobe_init: {len(syms)} symbols found")
        ret = core.register_fprobe_syms(fp, syms)
    if ret < 0:
        kernel.printk(f"fprobe_init: register_fprobe failed, returned {ret}")
        return ret
    state.probe = fp
    state.symbol = symbol
    kernel.printk(f"fprobe_init: Planted fprobe at {symbol}")
    return 0


def cleanup_module(kernel: Any) -> None:
    if state.probe is not None:
        kernel.fprobe.unregister_fprobe(state.probe)
        kernel.printk(f"fprobe_exit: fprobe at {state.symbol} unregistered. {state.nhit} times hit, "
                      f"{state.probe.nmissed} times missed")
        state.probe = None

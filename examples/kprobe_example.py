"""A port of the kernel's samples/kprobes/kprobe_example.c to the simulated kernel.

A kprobe on ``symbol`` (default ``kernel_clone``) whose pre-handler and post-handler
print the probe address (``%p``: hashed), the instruction pointer and the flags of the
registers they get, as the C sample does on x86.  Load it into a running mount:

    tracefs-sim insmod /tmp/t examples/kprobe_example.py symbol=vfs_read
    cat /tmp/t/README > /dev/null
    tracefs-sim dmesg /tmp/t
    tracefs-sim rmmod /tmp/t kprobe_example
"""

from __future__ import annotations

from typing import Any

from tracefs_sim.kernel.kprobes import Kprobe
from tracefs_sim.kernel.ptrace import PT_REGS_OFFSETS, PtRegs
from tracefs_sim.kernel.trace_events_fmt import hashed_ptr

KSYM_NAME_LEN = 512
FLAGS = PT_REGS_OFFSETS["flags"]     # regs->flags


# static struct kprobe kp = { .symbol_name = symbol, };
kp = Kprobe(symbol_name="kernel_clone")
kernel: Any = None      # the kernel this module is loaded into


def handler_pre(p: Kprobe, regs: PtRegs) -> int:
    """kprobe pre_handler: called just before the probed instruction is executed."""
    kernel.printk(f"handler_pre: <{p.symbol_name}> p->addr = 0x{hashed_ptr(p.addr)}, "
                  f"ip = {regs.ip:x}, flags = 0x{regs.get_register(FLAGS):x}")
    # A dump_stack() here would give a stack backtrace
    return 0


def handler_post(p: Kprobe, regs: PtRegs, flags: int) -> None:
    """kprobe post_handler: called after the probed instruction is executed."""
    kernel.printk(f"handler_post: <{p.symbol_name}> p->addr = 0x{hashed_ptr(p.addr)}, "
                  f"flags = 0x{regs.get_register(FLAGS):x}")


def init_module(k: Any, symbol: str = "kernel_clone") -> int:
    """kprobe_init(): module_param_string(symbol, …)."""
    global kernel
    kernel = k
    kp.symbol_name = symbol[:KSYM_NAME_LEN - 1]
    kp.pre_handler = handler_pre
    kp.post_handler = handler_post
    ret = k.kprobes.register_kprobe(kp)
    if ret < 0:
        k.printk(f"kprobe_init: register_kprobe failed, returned {ret}")
        return ret
    k.printk(f"kprobe_init: Planted kprobe at {hashed_ptr(kp.addr)}")
    return 0


def cleanup_module(k: Any) -> None:
    """kprobe_exit()."""
    k.kprobes.unregister_kprobe(kp)
    k.printk(f"kprobe_exit: kprobe at {hashed_ptr(kp.addr)} unregistered")

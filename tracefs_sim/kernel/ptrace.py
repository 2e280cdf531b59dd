"""The register view a probe handler gets (arch/x86: asm/ptrace.h ``struct pt_regs``,
kernel/ptrace.c's ``regs_query_register_offset`` / ``regs_get_register``).

``%REG`` fetch arguments of kprobe and uprobe events name a ``pt_regs`` member; the probe
parser turns the name into its offset and the kind's fetch code reads the register at
that offset.  The simulated machine keeps only a call's argument registers, return
value and stack (``mm.Regs``); ``PtRegs`` maps every x86_64 register onto those, so both
kinds read registers the same way.
"""

from __future__ import annotations

import errno

from .mm import Regs

M64 = 0xFFFFFFFFFFFFFFFF

# regoffset_table (x86_64): name -> offsetof(struct pt_regs, name)
PT_REGS_OFFSETS: dict[str, int] = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "r11": 48, "r10": 56, "r9": 64, "r8": 72,
    "bx": 40, "cx": 88, "dx": 96, "si": 104, "di": 112, "bp": 32, "ax": 80,
    "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160,
}
_OFFSET_NAMES = {v: k for k, v in PT_REGS_OFFSETS.items()}
# argument registers of the x86_64 calling convention, in order
_ARG_REG_OFFSETS = {112: 0, 104: 1, 96: 2, 88: 3, 72: 4, 64: 5}


def regs_query_register_offset(name: str) -> int:
    """``regs_query_register_offset``: the pt_regs offset of ``name`` or -EINVAL."""
    return PT_REGS_OFFSETS.get(name, -errno.EINVAL)


class PtRegs:
    """The pt_regs a probe handler sees, over the workload's register set.

    ``ip`` is what the handler reads in regs->ip (probe address + 1, as after int3);
    the argument registers come from the call's arguments, ``ax`` from the return value.
    """

    __slots__ = ("src", "ip", "parent_ip", "retval", "user")

    def __init__(self, src: Regs | None, ip: int, parent_ip: int = 0, retval: int | None = None,
                 user: bool = False) -> None:
        self.src = src
        self.ip = ip
        self.parent_ip = parent_ip
        self.retval = retval
        self.user = user

    def get_kernel_argument(self, n: int) -> int:
        src = self.src
        return src.get_kernel_argument(n) & M64 if src is not None else 0

    def return_value(self) -> int:
        if self.retval is not None:
            return self.retval & M64
        src = self.src
        return src.return_value() & M64 if src is not None else 0

    def kernel_stack_nth(self, n: int) -> int:
        src = self.src
        return src.kernel_stack_nth(n) & M64 if src is not None else 0

    def stack_pointer(self) -> int:
        src = self.src
        if src is not None:
            return src.stack_pointer() & M64
        return 0x7FFC_0000_3F00 if self.user else 0xFFFF_C900_0000_3F00

    def get_register(self, offset: int) -> int:
        """``regs_get_register``."""
        n = _ARG_REG_OFFSETS.get(offset)
        if n is not None:
            return self.get_kernel_argument(n)
        name = _OFFSET_NAMES.get(offset)
        if name == "ax":
            return self.return_value()
        if name == "sp":
            return self.stack_pointer()
        if name == "ip":
            return self.ip & M64
        if name == "flags":
            return 0x246
        if name == "cs":
            return 0x33 if self.user else 0x10
        if name == "ss":
            return 0x2B if self.user else 0x18
        if name == "orig_ax":
            return M64
        if name == "bp":
            return (self.stack_pointer() + 0x28) & M64
        return 0

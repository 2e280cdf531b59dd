"""The x86_64 system call table of the reference kernel: number → name, entry point and
arguments.

``data/syscalls_x86_64.tsv`` (written by scripts/gen_data.py) joins
arch/x86/entry/syscalls/syscall_64.tbl with the ``syscalls:sys_enter_*`` formats, which
declare each syscall's arguments as ``SYSCALL_DEFINEn`` does (``const char * filename``).
The kernel model names a host task's syscall from its number with it (``x64_sys_call`` →
``__x64_sys_NAME``, the ``sys_enter_NAME`` event), and the host tracer's capture table
(tracefs_sim/host/capture.py) is derived from the argument types.  Pure data: the rows
(frozen) are parsed once per process and shared by every ``load()``; they never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

DATA = "syscalls_x86_64.tsv"


@dataclass(frozen=True, slots=True)
class SyscallArg:
    type: str           # as the sys_enter format spells it: "const char *", "umode_t"
    name: str           # "filename"


@dataclass(frozen=True, slots=True)
class Syscall:
    nr: int
    name: str           # the table's name: "stat" (what strace and ausyscall print)
    entry: str | None   # "sys_newstat"; None for a number the kernel does not implement (-ENOSYS)
    noreturn: bool      # exit, exit_group: no sys_exit follows
    args: tuple[SyscallArg, ...]

    @property
    def event(self) -> str | None:
        """The syscalls:* event stem: "newstat" for sys_enter_newstat/sys_exit_newstat."""
        return self.entry[len("sys_"):] if self.entry else None

    @property
    def symbol(self) -> str | None:
        """The entry point's symbol: "__x64_sys_newstat"."""
        return f"__x64_{self.entry}" if self.entry else None


class SyscallTable:
    """The syscalls by number and by table name."""

    __slots__ = ("by_name", "by_nr")

    def __init__(self, syscalls: list[Syscall]) -> None:
        self.by_nr: dict[int, Syscall] = {s.nr: s for s in syscalls}
        self.by_name: dict[str, Syscall] = {s.name: s for s in syscalls}

    @classmethod
    def load(cls) -> SyscallTable:
        return cls(list(_rows()))

    def __len__(self) -> int:
        return len(self.by_nr)


@cache
def _rows() -> tuple[Syscall, ...]:
    """The packaged table's rows, parsed once (every Kernel boot loads the table)."""
    return tuple(parse(resources.files("tracefs_sim.data").joinpath(DATA).read_text()))


def parse(text: str) -> list[Syscall]:
    """The rows of syscalls_x86_64.tsv (see scripts/gen_data.py for the columns)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        nr, name, entry, noreturn, *args = line.split("\t")
        out.append(Syscall(int(nr), name, None if entry == "-" else entry, noreturn == "noreturn",
                           tuple(SyscallArg(*a.rsplit(" ", 1)) for a in args)))
    return out

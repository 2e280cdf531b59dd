"""SyscallDefines (kernel/workload/syscall_define.py): the bodies a family's methods name
are registered bound to the family, one Body per syscall with its enter, exit and wake;
a syscall given a part twice fails when the class is defined."""

from __future__ import annotations

import pytest

from tracefs_sim.kernel import Kernel
from tracefs_sim.kernel.workload.syscall_define import SyscallDefines
from tracefs_sim.kernel.workload.syscalls import Body, SyscallCtx


class _Bodies:
    """A fake Syscalls: what SyscallDefines.register needs of it."""

    def __init__(self) -> None:
        self.bodies: dict[str, Body] = {}

    def register(self, name: str, body: Body) -> None:
        self.bodies[name] = body


class _Family:
    SYSCALLS = SyscallDefines()

    @SYSCALLS.enter("sleep", "sleep2")
    def _enter(self, ctx: SyscallCtx) -> None:
        pass

    @SYSCALLS.exit("sleep")
    def _exit(self, ctx: SyscallCtx, ret: int) -> None:
        pass

    @SYSCALLS.wake("sleep")
    def _wake(self, ctx: SyscallCtx, at: int) -> bool:
        return True

    @SYSCALLS.exit("only_exit")
    def _only_exit(self, ctx: SyscallCtx, ret: int) -> None:
        pass


def test_the_bodies_are_bound_to_the_family_instance() -> None:
    fam, reg = _Family(), _Bodies()
    fam.SYSCALLS.register(reg, fam)
    assert sorted(reg.bodies) == ["only_exit", "sleep", "sleep2"]
    assert reg.bodies["sleep"] == Body(fam._enter, fam._exit, fam._wake)
    assert reg.bodies["sleep2"] == Body(fam._enter)
    assert reg.bodies["only_exit"] == Body(exit=fam._only_exit)


def test_a_syscall_given_two_enters_fails_at_class_definition() -> None:
    with pytest.raises(ValueError, match="syscall dup has an enter already"):
        class _Twice:
            SYSCALLS = SyscallDefines()

            @SYSCALLS.enter("dup")
            def _a(self, ctx: SyscallCtx) -> None:
                pass

            @SYSCALLS.enter("dup")
            def _b(self, ctx: SyscallCtx) -> None:
                pass


def test_the_machine_registers_every_family_body() -> None:
    k = Kernel()
    bodies = k.workload.syscalls.bodies
    fs = k.workload.fs
    for name in ("read", "write", "pread64", "pwrite64"):
        assert bodies[name].enter == fs._ksys
    assert bodies["pipe2"].enter == fs._pipe and bodies["fdatasync"].enter == fs._fsync
    assert bodies["nanosleep"] == Body(k.workload.time._nanosleep, k.workload.time.sleep_exit,
                                       k.workload.time.expire)
    assert bodies["rseq"].enter is None and bodies["rseq"].exit == k.workload.entry.rseq._sys_rseq

"""SYSCALL_DEFINE for the families of the machine: a family's method names the syscalls
it is a part of the body of where it is defined, as SYSCALL_DEFINEn() puts a syscall's
entry point beside its code, and the family hands them all to ``Syscalls.register`` in
one call when the machine is built.

One table per family class, filled while the class body runs and only read after (the
kernel's sys_call_table is const too); a syscall given two enters (exits, wakes) fails
when the class is defined.  A body whose parts belong to another family (select's
sleeps end as nanosleep's do) is registered by hand with ``Syscalls.register``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Protocol, TypeVar

from .syscalls import Body

F = TypeVar("F", bound=Callable[..., object])


class BodyRegistry(Protocol):
    """Where the bodies go: ``Syscalls`` (a fake in the tests)."""

    def register(self, name: str, body: Body) -> None: ...


# the parts of a Body, in its field order
ENTER, EXIT, WAKE = 0, 1, 2
ROLES = ("enter", "exit", "wake")


class SyscallDefines:
    """The syscall bodies one family class defines: per syscall name, the methods that
    are its ``Body``'s enter, exit and wake (see Body for what each does)."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[str, list[Callable[..., object] | None]] = {}

    def _define(self, role: int, names: tuple[str, ...]) -> Callable[[F], F]:
        def define(fn: F) -> F:
            for name in names:
                parts = self._parts.setdefault(name, [None, None, None])
                if parts[role] is not None:
                    raise ValueError(f"syscall {name} has an {ROLES[role]} already")
                parts[role] = fn
            return fn
        return define

    def enter(self, *names: str) -> Callable[[F], F]:
        """The method is the ``enter`` of these syscalls' bodies."""
        return self._define(ENTER, names)

    def exit(self, *names: str) -> Callable[[F], F]:
        """The method is the ``exit`` of these syscalls' bodies."""
        return self._define(EXIT, names)

    def wake(self, *names: str) -> Callable[[F], F]:
        """The method is the ``wake`` of these syscalls' bodies."""
        return self._define(WAKE, names)

    def register(self, syscalls: BodyRegistry, family: object) -> None:
        """Register the bodies with the methods bound to ``family`` (the instance)."""
        for name, parts in self._parts.items():
            enter, exit_, wake = (None if fn is None else MethodType(fn, family) for fn in parts)
            syscalls.register(name, Body(enter, exit_, wake))

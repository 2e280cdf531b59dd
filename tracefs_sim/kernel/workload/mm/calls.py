"""The function call sites of the memory paths, with the registers of the call in progress.

The mm code runs inside a syscall (mmap, a read's copy to user space, an exec), in an
exception from user space (a page fault between two syscalls), in a context switch
(switch_mm, the lazy-TLB mmdrop) or in an RCU callback.  ``Path`` enters and leaves its
functions in the order 6.12 runs them, so the events they fire sit inside them; each
function's argument registers (``handle_mm_fault(vma, address, flags, regs)``) and
return value are the operation's, found through a provider installed in the call sites
ahead of any other source for that name (the syscall's registers are asked when the mm
paths have none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..defs import Tree, tree_names

if TYPE_CHECKING:
    from ..callsite import ArgsFn, CallSites, Frame

Regs = dict[str, tuple[int, ...]]


class Path:
    """The mm functions the current task is in (one operation at a time: the mm paths
    do not nest across tasks)."""

    def __init__(self, sites: CallSites) -> None:
        self.sites = sites
        self.regs: Regs = {}
        self.rets: dict[str, int] = {}
        self.frames: list[tuple[str, list[Frame]]] = []
        self.base: list[str | None] = [None]
        self._args_fn: dict[str, ArgsFn] = {}
        self._ret_fn: dict[str, ArgsFn] = {}

    # ------------------------------------------------------------------ providers
    def _own(self, name: str) -> None:
        """Make ``name``'s argument and return providers read this path's values first."""
        rets = self.rets
        self._put_first(name, self._args_fn, self.sites.args, self.regs.get, ())
        self._put_first(name, self._ret_fn, self.sites.rets,
                        lambda n: None if (v := rets.get(n)) is None else (v,), (0,))

    @staticmethod
    def _put_first(name: str, mine: dict[str, ArgsFn], table: dict[str, ArgsFn],
                   read: Callable[[str], tuple[int, ...] | None], default: tuple[int, ...]) -> None:
        """Put this path's provider of ``name`` at the head of ``table`` (the call sites'
        argument or return providers) unless it is there already: ``read``'s values,
        else the provider it displaced, else ``default``."""
        own = mine.get(name)
        prev = table.get(name)
        if own is not None and prev is own:
            return

        def provider(prev: ArgsFn | None = prev) -> tuple[int, ...]:
            got = read(name)
            if got is not None:
                return got
            return prev() if prev is not None else default
        mine[name] = table[name] = provider

    def _own_tree(self, tree: Tree | str) -> None:
        for name in tree_names(tree):
            self._own(name)

    # ------------------------------------------------------------------ nesting
    @property
    def top(self) -> str | None:
        return self.frames[-1][0] if self.frames else self.base[-1]

    def begin(self, parent: str | None) -> None:
        """An operation starts below ``parent`` (the innermost function of the code that
        runs it: a syscall's open chain, ``do_user_addr_fault`` of a fault)."""
        self.base.append(parent)

    def end(self) -> None:
        self.base.pop()

    def enter(self, name: str, *args: int, ret: int | None = None) -> None:
        """``name`` is called by the innermost open function and stays open."""
        self.regs[name] = args
        if ret is not None:
            self.rets[name] = ret
        if self.sites.armed():
            self._own(name)
        self.frames.append((name, self.sites.enter_chain((name,), self.top)))

    def leave(self, name: str) -> None:
        """``name`` (the innermost open function) returns."""
        got, frames = self.frames.pop()
        assert got == name, f"leaving {name} inside {got}"
        self.sites.leave_chain(frames)
        self.regs.pop(name, None)
        self.rets.pop(name, None)

    def call(self, tree: Tree | str, regs: Regs | None = None, rets: dict[str, int] | None = None) -> None:
        """``tree`` runs to its return, called by the innermost open function."""
        sites = self.sites
        if not sites.armed():
            return
        self._own_tree(tree)
        if regs:
            self.regs.update(regs)
        if rets:
            self.rets.update(rets)
        sites.call(tree, self.top)
        if regs:
            for k in regs:
                self.regs.pop(k, None)
        if rets:
            for k in rets:
                self.rets.pop(k, None)

    def inside(self, name: str, *args: int, ret: int | None = None) -> _Inside:
        """``with path.inside("mmap_region", ...):`` — enter on entry, leave on exit."""
        return _Inside(self, name, args, ret)


class _Inside:
    __slots__ = ("path", "name", "args", "ret")

    def __init__(self, path: Path, name: str, args: tuple[int, ...], ret: int | None) -> None:
        self.path = path
        self.name = name
        self.args = args
        self.ret = ret

    def __enter__(self) -> None:
        self.path.enter(self.name, *self.args, ret=self.ret)

    def __exit__(self, *exc: object) -> None:
        self.path.leave(self.name)


Caller = Callable[[], None]

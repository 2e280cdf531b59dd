"""Loadable modules (kernel/module/main.c, procfs.c, params.c): Python files loaded into
the simulated kernel as C modules are loaded into Linux.

A module is a Python file.  ``init_module(kernel, **params)`` is its ``module_init``
(0 or None: loaded; -errno: the load fails with that errno; a positive value loads it
with the kernel's warning), ``cleanup_module(kernel)`` its ``module_exit`` (a module
without one cannot be unloaded: -EBUSY, as without ``module_exit``).  Parameters are
``k=v`` strings; one that ``init_module`` does not take fails the load with -ENOENT
("Unknown parameter").  The module's name is the file's name without ``.py``
(KBUILD_MODNAME); a second module of that name is -EEXIST.

Each module gets its text: an address range after the reference kernel's modules, where
its functions get addresses when the kernel needs one (``addr_of``: a ``%ps``, a
trace_printk() ip, a livepatch target).  The CPU can run there: a callback that moves a
traced function's instruction pointer to a module function (IPMODIFY) makes the
simulated kernel run that Python function in place of the original body
(``run_text``); what it calls through ``call`` shows in the tracers with it as parent.

A handler of a module that raises (an fprobe/kprobe handler, an ftrace_ops callback, a
kprobe_multi program) is reported by ``handler_raised``: a WARNING line and the Python
traceback in the kernel log (ratelimited as printk_ratelimited: 10 per 5 s), and the
caller counts it as a miss where it keeps one.

``modules_text()`` is /proc/modules (the loaded Python modules, newest first, then the
reference kernel's modules); ``dmesg_text()`` the kernel log.
"""

from __future__ import annotations

import errno
import inspect
import os
import traceback
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from .lib import PAGE_SIZE, kstrtobool, kstrtouint
from .refdata import data_bytes

if TYPE_CHECKING:
    from .core import Kernel
    from .mm import Regs

MODULE_TEXT_BASE = 0xFFFFFFFFC1000000   # after the reference kernel's modules (module_alloc)
MODULE_TEXT_SPAN = 0x100000             # address space reserved per module name
FUNC_STRIDE = 0x100                     # bytes of text given to each function
PY_MODULE_PREFIX = "tracefs_sim_module_"   # __name__ of a loaded module's Python module
RATELIMIT_INTERVAL_NS = 5_000_000_000   # DEFAULT_RATELIMIT_INTERVAL (5 * HZ)
RATELIMIT_BURST = 10                    # DEFAULT_RATELIMIT_BURST
TAINTS = "(OE)"   # out of tree, unsigned (CONFIG_MODULE_SIG=y, not enforced)

# enum module_state, as m_show() prints it
STATE_LIVE = "Live"
STATE_COMING = "Loading"
STATE_GOING = "Unloading"


class ModuleError(OSError):
    """A failed insmod/rmmod: ``errno`` is the kernel's, ``strerror`` says why."""


class Module:
    """``struct module`` of a loaded Python file."""

    def __init__(self, name: str, path: str, py: types.ModuleType, base: int) -> None:
        self.name = name
        self.path = path
        self.py = py
        self.base = base               # mem[MOD_TEXT].base
        self.state = STATE_COMING
        self.refcnt = 0
        self.params: dict[str, str] = {}

    @property
    def size(self) -> int:
        """module_total_size(): three pages (text, data, rodata) and more for big text."""
        return 3 * PAGE_SIZE


class Modules:
    """The module list of one kernel (``kernel.modules``): name -> Module, load order."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.loaded: dict[str, Module] = {}
        # text symbols of module functions: addr -> (name, module); shared with
        # kernel.module_syms, which %ps (trace_output) and /proc/kallsyms read
        self.syms: dict[int, tuple[str, str]] = kernel.module_syms
        self._text: dict[int, Callable[..., object]] = {}     # addr -> the function there
        self._addr: dict[tuple[str, str], int] = {}            # (module, func name) -> addr
        self._regions: dict[str, list[int]] = {}               # module -> [base, next addr]
        self._next_region = MODULE_TEXT_BASE
        self._rl_begin = 0
        self._rl_printed = 0
        self._rl_missed = 0
        # register_module_notifier(): called with (state, module) once a module is live
        # and once it is gone (what /proc/modules and /proc/kallsyms mirrors follow)
        self.notifiers: list[Callable[[str, Module], None]] = []

    # ------------------------------------------------------------------ mapping
    def __contains__(self, name: object) -> bool:
        return name in self.loaded

    def __iter__(self) -> Iterator[str]:
        return iter(self.loaded)

    def __len__(self) -> int:
        return len(self.loaded)

    def __getitem__(self, name: str) -> Module:
        return self.loaded[name]

    # ------------------------------------------------------------------ text
    def _region(self, module: str) -> list[int]:
        r = self._regions.get(module)
        if r is None:
            r = self._regions[module] = [self._next_region, self._next_region]
            self._next_region += MODULE_TEXT_SPAN
        return r

    def symbol(self, func: Callable[..., object], module: str) -> int:
        """The text address of ``func`` of ``module`` (given on first use): ``%ps``
        prints ``name [module]``, and the CPU can jump there (``run_text``)."""
        key = (module, func.__name__)
        addr = self._addr.get(key)
        if addr is None:
            r = self._region(module)
            addr = r[1]
            r[1] += FUNC_STRIDE
            self._addr[key] = addr
        self.syms[addr] = (func.__name__, module)
        self._text[addr] = func
        return addr

    def addr_of(self, func: Callable[..., object]) -> int:
        """The text address of a function of a loaded (or loading) module."""
        return self.symbol(func, self._owner_name(func))

    def _owner_name(self, func: Callable[..., object]) -> str:
        pyname = func.__module__ or ""
        if not pyname.startswith(PY_MODULE_PREFIX):
            raise ValueError(f"{func.__qualname__} is not a function of a loaded module")
        return pyname[len(PY_MODULE_PREFIX):]

    def text_at(self, addr: int) -> Callable[..., object] | None:
        """The module function at ``addr`` (None: no module text there)."""
        return self._text.get(addr)

    def run_text(self, addr: int, regs: Regs, nargs: int) -> int:
        """The CPU continues at ``addr`` with the registers of a call (an IPMODIFY
        callback moved it there): the module function runs with the call's first
        ``nargs`` argument registers, and what it returns is the call's return value."""
        func = self._text.get(addr)
        if func is None:
            raise KeyError(f"no module text at {addr:#x}")
        args = tuple(regs.get_kernel_argument(n) for n in range(nargs))
        try:
            ret = func(*args)
        except Exception as e:
            self.handler_raised(func, e)
            return 0
        return 0 if ret is None else int(ret)

    def call(self, caller: Callable[..., object], tree: tuple | str) -> None:
        """From module code: call kernel function(s) (a name, or a code-path tree as the
        workload's) through their ftrace call sites, returning to ``caller``."""
        self.k.workload.sites.call(tree, self.addr_of(caller))

    # ------------------------------------------------------------------ load / unload
    def insmod(self, path: str, params: dict[str, str] | None = None) -> Module:
        """Load the Python file at ``path`` (raises ModuleError)."""
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except OSError as e:
            raise ModuleError(e.errno or errno.ENOENT, f"{path}: {e.strerror}") from None
        return self.load(os.path.splitext(os.path.basename(path))[0], source, path, params or {})

    def load(self, name: str, source: str, path: str, params: dict[str, str]) -> Module:
        """load_module() + do_init_module() of ``source`` as module ``name``."""
        if not name.isidentifier():
            raise ModuleError(errno.ENOEXEC, f"{name}: not a module name")
        if name in self.loaded:
            raise ModuleError(errno.EEXIST, f"{name}: module is already loaded")
        py = types.ModuleType(PY_MODULE_PREFIX + name)
        py.__file__ = path
        try:
            exec(compile(source, path, "exec"), py.__dict__)
        except Exception as e:
            self._log_exception(f"{name}: cannot load {path}", e)
            raise ModuleError(errno.ENOEXEC, f"{name}: {type(e).__name__}: {e}") from None
        mod = Module(name, path, py, self._region(name)[0])
        # the loader lays out the module's text now: every function it defines has its
        # address from the start (/proc/kallsyms lists them, a probe can name them)
        for fn in py.__dict__.values():
            if isinstance(fn, types.FunctionType) and fn.__module__ == py.__name__:
                self.symbol(fn, name)
        mod.params = dict(params)
        init = py.__dict__.get("init_module")
        if init is not None:
            bad = _unknown_param(init, params)
            if bad is not None:
                self.k.printk(f"{name}: Unknown parameter `{bad}'")
                raise ModuleError(errno.ENOENT, f"{name}: Unknown parameter `{bad}'")
        self.loaded[name] = mod               # MODULE_STATE_COMING: listed as Loading
        ret: object = 0
        try:
            if init is not None:
                ret = init(self.k, **params)
        except Exception as e:
            self._drop(mod)
            self._log_exception(f"{name}: init_module raised", e)
            raise ModuleError(errno.ENOEXEC, f"{name}: init_module raised "
                                             f"{type(e).__name__}: {e}") from None
        if ret is None:
            ret = 0
        if not isinstance(ret, int) or isinstance(ret, bool):
            self._drop(mod)
            raise ModuleError(errno.EINVAL, f"{name}: init_module returned {ret!r}, not an int")
        if ret < 0:
            self._drop(mod)
            raise ModuleError(-ret, f"{name}: init_module returned {ret}")
        if ret > 0:
            self.k.printk(f"do_init_module: '{name}'->init suspiciously returned {ret}, it "
                          "should follow 0/-E convention")
            self.k.printk("do_init_module: loading module anyway...")
        mod.state = STATE_LIVE
        self._notify(STATE_LIVE, mod)
        return mod

    def delete_module(self, name: str, force: bool = False) -> None:
        """delete_module(): ``cleanup_module(kernel)`` runs, then the module is gone.
        A module without cleanup_module stays (-EBUSY) unless ``force``."""
        mod = self.loaded.get(name)
        if mod is None:
            raise ModuleError(errno.ENOENT, f"{name}: module is not loaded")
        if mod.state != STATE_LIVE:
            raise ModuleError(errno.EBUSY, f"{name}: module is {mod.state.lower()}")
        if mod.refcnt and not force:
            raise ModuleError(errno.EWOULDBLOCK, f"{name}: module is in use")
        exit_ = mod.py.__dict__.get("cleanup_module")
        if exit_ is None and mod.py.__dict__.get("init_module") is not None and not force:
            raise ModuleError(errno.EBUSY, f"{name}: module has no cleanup_module")
        mod.state = STATE_GOING
        try:
            if exit_ is not None:
                exit_(self.k)
        except Exception as e:
            self._log_exception(f"{name}: cleanup_module raised", e)
        finally:
            self._drop(mod)
            self._notify(STATE_GOING, mod)

    def register_module_notifier(self, fn: Callable[[str, Module], None]) -> None:
        """register_module_notifier(): ``fn(state, module)`` after each load and unload."""
        self.notifiers.append(fn)

    def _notify(self, state: str, mod: Module) -> None:
        for fn in self.notifiers:
            fn(state, mod)

    def _drop(self, mod: Module) -> None:
        """free_module(): off the list; its text symbols go."""
        self.loaded.pop(mod.name, None)
        for key in [k for k in self._addr if k[0] == mod.name]:
            addr = self._addr.pop(key)
            self.syms.pop(addr, None)
            self._text.pop(addr, None)
        region = self._regions.get(mod.name)
        if region is not None:
            region[1] = region[0]

    # ------------------------------------------------------------------ reports
    def handler_raised(self, handler: Callable[..., object], exc: BaseException) -> None:
        """A callback raised: a WARNING and the traceback in the kernel log
        (printk_ratelimited), then the caller goes on (and counts a miss)."""
        k = self.k
        now = k.boot_clock.ns()
        if now - self._rl_begin >= RATELIMIT_INTERVAL_NS:
            if self._rl_missed:
                k.printk(f"handler_raised: {self._rl_missed} callbacks suppressed")
            self._rl_begin, self._rl_printed, self._rl_missed = now, 0, 0
        if self._rl_printed >= RATELIMIT_BURST:
            self._rl_missed += 1
            return
        self._rl_printed += 1
        name = getattr(handler, "__qualname__", repr(handler))   # a callable object may have none
        pyname = getattr(handler, "__module__", "") or ""
        where = (f"{name} [{pyname[len(PY_MODULE_PREFIX):]}]"
                 if pyname.startswith(PY_MODULE_PREFIX) else name)
        sched = k.sched
        self._log_exception(f"WARNING: CPU: {sched.cpu} PID: {sched.current.pid} at {where}", exc)

    def _log_exception(self, head: str, exc: BaseException) -> None:
        k = self.k
        k.printk(f"{head}: {type(exc).__name__}: {exc}")
        for chunk in traceback.format_exception(exc):
            for line in chunk.rstrip("\n").split("\n"):
                k.printk(line)

    def modules_text(self) -> str:
        """/proc/modules: the loaded Python modules (newest first, as list_add_rcu() puts
        them at the head), then the reference kernel's modules."""
        ours = [f"{m.name} {m.size} {m.refcnt} - {m.state} {m.base:#x} {TAINTS}\n"
                for m in reversed(self.loaded.values())]
        return "".join(ours) + data_bytes("proc-modules.txt").decode()

    def lsmod_text(self) -> str:
        """What lsmod(8) prints from /proc/modules."""
        out = ["Module                  Size  Used by\n"]
        for line in self.modules_text().splitlines():
            f = line.split()
            users = "" if f[3] == "-" else f[3].rstrip(",")
            out.append(f"{f[0]:<19} {f[1]:>8}  {f[2]}{' ' + users if users else ''}\n")
        return "".join(out)

    def dmesg_text(self) -> str:
        """The kernel log as dmesg(1) prints it: ``[seconds.micros] text``."""
        return "".join(line + "\n" for line in self.k.log)


def module_param(kernel: Kernel, modname: str, name: str, value: str | int | bool,
                 kind: type[bool] | type[int]) -> tuple[int, int]:
    """(err, value) of a ``bool`` or ``uint`` module parameter as kernel/params.c sets it
    (param_set_bool: kstrtobool; param_set_uint: kstrtouint).  A value given on the
    insmod line is a string; the default is already typed.  A bad one is logged as
    parse_args() logs it and is -EINVAL."""
    if not isinstance(value, str):
        return 0, int(value)
    if kind is bool:
        err, b = kstrtobool(value)
        val = int(b)
    else:
        err, val = kstrtouint(value, 0)
    if err:
        kernel.printk(f"{modname}: `{value}' invalid for parameter `{name}'")
    return err, val


def _unknown_param(init: Callable[..., object], params: dict[str, str]) -> str | None:
    """The first parameter ``init_module(kernel, **params)`` does not take."""
    sig = inspect.signature(init)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    names = set(list(sig.parameters)[1:])
    for key in params:
        if key not in names:
            return key
    return None

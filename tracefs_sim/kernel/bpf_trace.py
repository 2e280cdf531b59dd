"""kprobe_multi and kprobe_session links for Python programs (kernel/trace/bpf_trace.c,
bpf_kprobe_multi_link_attach() in 6.12): one callable attached to many functions at
once, on one fprobe.

``kernel.kprobe_multi.attach(prog, syms=… | addrs=… | pattern=…, cookies=…,
retprobe=False, session=False)`` returns a ``KprobeMultiLink`` (or raises KernelError
with the kernel's errno); ``link.detach()`` removes it.  As in the kernel the link
embeds an ``Fprobe`` registered with register_fprobe_ips() on the functions' addresses
(symbols are looked up with ftrace_lookup_symbols(), sorted; a ``pattern`` is resolved
the way libbpf resolves one, a glob over available_filter_functions, into addresses),
so it shows in ``enabled_functions`` as a kprobe_multi link's fprobe shows on 6.12:
``R``, the fprobe's own trampoline, ``fprobe_handler``.

``prog(ctx)`` gets a ``KprobeMultiRunCtx``: ``ctx.regs`` (pt_regs), and the helpers a
kprobe_multi program calls: ``get_func_ip()`` (the function's address: the ftrace
location minus the endbr64, get_entry_ip()), ``get_attach_cookie()`` (the cookie given
for that function, 0 without), ``session_is_return()`` and ``session_cookie`` (a u64
the entry and the return run of one call share: the fprobe's entry data).

* default: ``prog`` runs at each entry, its return value ignored;
* ``retprobe=True`` (BPF_F_KPROBE_MULTI_RETURN): at each return (``ctx.regs`` holds the
  return value);
* ``session=True`` (a kprobe_session program): at the entry, and at the return of the
  calls whose entry run returned 0.

A program never runs inside another one on a CPU (``bpf_prog_active``): such a run is a
miss of the program (``link.prog_misses``); the fprobe's misses (recursion, no rethook
node) are ``link.missed`` (what bpf_link_info reports), where a program that raises
(reported in the kernel log) is counted too.
"""

from __future__ import annotations

import bisect
import errno
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import KernelError
from .fprobe import Fprobe
from .lib import glob_match
from .mm import Regs

if TYPE_CHECKING:
    from .core import Kernel

BPF_F_KPROBE_MULTI_RETURN = 1 << 0
MAX_KPROBE_MULTI_CNT = 1 << 20
SESSION_COOKIE = struct.Struct("<Q")


class KprobeMultiRunCtx:
    """``struct bpf_kprobe_multi_run_ctx`` and the helpers that read it."""

    __slots__ = ("link", "entry_ip", "is_return", "data", "regs")

    def __init__(self, link: KprobeMultiLink) -> None:
        self.link = link
        self.entry_ip = 0
        self.is_return = False
        self.data: bytearray | None = None
        self.regs: Regs | None = None

    def get_func_ip(self) -> int:
        """bpf_get_func_ip(): the probed function's address."""
        return self.entry_ip

    def get_attach_cookie(self) -> int:
        """bpf_get_attach_cookie(): the cookie of the probed function (0: none)."""
        return self.link.cookie_of(self.entry_ip)

    def session_is_return(self) -> bool:
        """bpf_session_is_return()."""
        return self.is_return

    @property
    def session_cookie(self) -> int:
        """*bpf_session_cookie(): the u64 the entry and the return run share."""
        if self.data is None:
            return 0
        return SESSION_COOKIE.unpack_from(self.data)[0]

    @session_cookie.setter
    def session_cookie(self, value: int) -> None:
        if self.data is None:
            raise KernelError(errno.EINVAL, "session cookie outside a kprobe_session program")
        SESSION_COOKIE.pack_into(self.data, 0, value & 0xFFFFFFFFFFFFFFFF)


Prog = Callable[[KprobeMultiRunCtx], int | None]


class KprobeMultiLink:
    """``struct bpf_kprobe_multi_link``: the fprobe, the sorted addresses and cookies."""

    def __init__(self, core: KprobeMulti, prog: Prog, addrs: list[int], cookies: list[int] | None,
                 flags: int, session: bool) -> None:
        self.core = core
        self.prog = prog
        self.flags = flags
        self.session = session
        self.addrs = addrs                    # sorted (the cookies with them)
        self.cookies = cookies
        self.cnt = len(addrs)
        self.prog_misses = 0
        self.fp = Fprobe()
        self.fp.owner = self                  # container_of(fp, struct bpf_kprobe_multi_link, fp)
        if not flags & BPF_F_KPROBE_MULTI_RETURN:
            self.fp.entry_handler = self.kprobe_multi_link_handler
        if flags & BPF_F_KPROBE_MULTI_RETURN or session:
            self.fp.exit_handler = self.kprobe_multi_link_exit_handler
        if session:
            self.fp.entry_data_size = SESSION_COOKIE.size
        self._ctx = KprobeMultiRunCtx(self)
        self._entry_ip: dict[int, int] = {}   # ftrace location -> function address

    @property
    def missed(self) -> int:
        """bpf_link_info.kprobe_multi.missed: the fprobe's nmissed."""
        return self.fp.nmissed

    def cookie_of(self, entry_ip: int) -> int:
        """bpf_kprobe_multi_cookie(): bsearch of the sorted addresses."""
        cookies = self.cookies
        if cookies is None:
            return 0
        i = bisect.bisect_left(self.addrs, entry_ip)
        return cookies[i] if i < len(self.addrs) and self.addrs[i] == entry_ip else 0

    def get_entry_ip(self, fentry_ip: int) -> int:
        """get_entry_ip() (x86 IBT): the ftrace location minus an endbr64 before it."""
        ip = self._entry_ip.get(fentry_ip)
        if ip is None:
            k = self.core.kernel
            i = k.ftrace.ip_to_index(fentry_ip)
            ip = k.kallsyms.func_start(i) if i is not None else fentry_ip
            self._entry_ip[fentry_ip] = ip
        return ip

    # ------------------------------------------------------------------ handlers
    def prog_run(self, entry_ip: int, regs: Regs | None, is_return: bool,
                 data: bytearray | None) -> int:
        """kprobe_multi_link_prog_run(): once per CPU at a time (bpf_prog_active)."""
        core = self.core
        cpu = core.kernel.sched.cpu
        active = core.bpf_prog_active
        active[cpu] += 1
        try:
            if active[cpu] != 1:
                self.prog_misses += 1
                return 0
            # one run at a time on a CPU, and one CPU at a time here: one context
            ctx = self._ctx
            ctx.entry_ip, ctx.is_return, ctx.data, ctx.regs = entry_ip, is_return, data, regs
            try:
                return self.prog(ctx) or 0
            except Exception as e:
                core.kernel.modules.handler_raised(self.prog, e)
                self.fp.nmissed += 1
                return 1      # a failed session entry does not run the return
        finally:
            active[cpu] -= 1

    def kprobe_multi_link_handler(self, fp: Fprobe, fentry_ip: int, ret_ip: int,
                                  regs: Regs | None, data: bytearray | None) -> int:
        err = self.prog_run(self.get_entry_ip(fentry_ip), regs, False, data)
        return err if self.session else 0

    def kprobe_multi_link_exit_handler(self, fp: Fprobe, fentry_ip: int, ret_ip: int,
                                       regs: Regs, data: bytearray | None) -> None:
        self.prog_run(self.get_entry_ip(fentry_ip), regs, True, data)

    def detach(self) -> None:
        """Close the link: its fprobe goes (bpf_kprobe_multi_link_release)."""
        self.core.detach(self)


class KprobeMulti:
    """The kprobe_multi links of one kernel (``kernel.kprobe_multi``)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.links: list[KprobeMultiLink] = []
        self.bpf_prog_active = [0] * kernel.nr_cpus

    def resolve_pattern(self, pattern: str) -> list[int]:
        """libbpf's pattern attach: the address of every record of
        available_filter_functions whose name matches the glob (``*``, ``?``)."""
        ft = self.kernel.ftrace
        return [ip for name, ip in zip(ft.names, ft.ips, strict=True) if glob_match(pattern, name)]

    def attach(self, prog: Prog, *, syms: Sequence[str] | None = None,
               addrs: Sequence[int] | None = None, pattern: str | None = None,
               cookies: Sequence[int] | None = None, retprobe: bool = False,
               session: bool = False) -> KprobeMultiLink:
        """bpf_kprobe_multi_link_attach() for ``prog`` (raises KernelError)."""
        if pattern is not None:
            if syms is not None or addrs is not None or cookies is not None:
                raise KernelError(errno.EINVAL, "a pattern takes no symbols, addresses or cookies")
            addrs = self.resolve_pattern(pattern)
            if not addrs:
                raise KernelError(errno.ENOENT, f"no function matches {pattern!r}")
        if (syms is None) == (addrs is None):
            raise KernelError(errno.EINVAL, "give symbols or addresses")
        cnt = len(syms) if syms is not None else len(addrs or ())
        if not cnt:
            raise KernelError(errno.EINVAL)
        if cnt > MAX_KPROBE_MULTI_CNT:
            raise KernelError(errno.E2BIG)
        if cookies is not None and len(cookies) != cnt:
            raise KernelError(errno.EINVAL, "one cookie per function")
        cks = list(cookies) if cookies is not None else None
        if syms is not None:
            # sort_r(syms, symbols_cmp_r, symbols_swap_r): the cookies move with them
            order = sorted(range(cnt), key=syms.__getitem__)
            sorted_syms = [syms[i] for i in order]
            if cks is not None:
                cks = [cks[i] for i in order]
            found = self.kernel.fprobe.ftrace_lookup_symbols(sorted_syms)
            if isinstance(found, int):
                raise KernelError(-found)
            addr_list = found
        else:
            addr_list = list(addrs or ())
        if cks is not None:
            # sort_r(addrs, …, bpf_kprobe_multi_cookie_swap): cookies follow their address
            pairs = sorted(zip(addr_list, cks, strict=True))
            addr_list = [a for a, _ in pairs]
            cks = [c for _, c in pairs]
        flags = BPF_F_KPROBE_MULTI_RETURN if retprobe else 0
        link = KprobeMultiLink(self, prog, addr_list, cks, flags, session)
        ret = self.kernel.fprobe.register_fprobe_ips(link.fp, addr_list, cnt)
        if ret:
            raise KernelError(-ret)
        self.links.append(link)
        return link

    def detach(self, link: KprobeMultiLink) -> None:
        if link not in self.links:
            raise KernelError(errno.ENOENT, "link is not attached")
        self.links.remove(link)
        self.kernel.fprobe.unregister_fprobe(link.fp)

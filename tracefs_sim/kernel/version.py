"""init/version.c of the reference kernel: ``linux_proc_banner`` and /proc/version.

``linux_proc_banner`` is the .rodata format string fs/proc/version.c prints with
utsname()'s sysname, release and version; with CONFIG_KALLSYMS_ALL=y it is in
/proc/kallsyms (an ``R`` symbol), so a probe can fetch ``@linux_proc_banner:string``
(kprobe_args_symbol.tc compares it with /proc/version).  LINUX_COMPILE_BY/HOST and the
compiler line are those of the Debian 6.12.117+deb12-amd64 build (CONFIG_CC_VERSION_TEXT,
CONFIG_LD_VERSION=24000); sysname/release/version come from data/uname-a.txt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .refdata import data_bytes

if TYPE_CHECKING:
    from .mm import Memory

LINUX_COMPILE_BY_HOST = "debian-kernel@lists.debian.org"
LINUX_COMPILER = ("x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, "
                  "GNU ld (GNU Binutils for Debian) 2.40")
LINUX_PROC_BANNER = f"%s version %s ({LINUX_COMPILE_BY_HOST}) ({LINUX_COMPILER}) %s\n"
# .rodata address of linux_proc_banner (past _etext, before the module area)
LINUX_PROC_BANNER_ADDR = 0xFFFFFFFFB1600140
DATA_SYMBOLS = (("R", "linux_proc_banner", LINUX_PROC_BANNER_ADDR),)


def utsname() -> tuple[str, str, str]:
    """(sysname, release, version) of ``uname -a`` of the reference kernel."""
    text = data_bytes("uname-a.txt").decode()
    f = text.split()
    # "Linux HOST RELEASE #1 SMP ... (DATE) x86_64 GNU/Linux": version ends before the machine
    version = " ".join(f[3:-2])
    return f[0], f[2], version


def proc_version() -> str:
    """The text of /proc/version: version_proc_show()."""
    sysname, release, version = utsname()
    return LINUX_PROC_BANNER.replace("%s", sysname, 1).replace("%s", release, 1).replace("%s", version, 1)


def map_banner(mem: Memory) -> None:
    """Put ``linux_proc_banner`` (with its NUL) at its address in simulated memory."""
    mem.map(LINUX_PROC_BANNER_ADDR, LINUX_PROC_BANNER.encode() + b"\0")

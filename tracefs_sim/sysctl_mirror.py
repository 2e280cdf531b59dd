"""The simulated kernel's /proc files as plain files, for a private mount namespace to
show in place of the host kernel's (``tracefs-sim run`` does: tracefs_sim/run.py).

``--proc-dir DIR``: /proc/kallsyms (the Python modules' symbols included), /proc/modules
(the reference kernel's modules and the ``--module`` Python modules) and /proc/version,
written once at start (:func:`write_proc_files`).

``--sysctl-dir DIR`` / ``--debugfs-dir DIR`` (:class:`SysctlMirror`): some tracing controls
are sysctls, not tracefs files (``kernel/stack_tracer_enabled``); scripts write them under
/proc/sys, which belongs to the host kernel.  ``run`` shadows those paths with a tmpfs and
gives its root to the server: every entry of ``kernel.sysctls`` is created there (never
over an existing file: a real sysctl is left alone) holding the kernel's value.  Before each request the adapter looks for files changed since (an inotify
descriptor tells whether any was written: one non-blocking read, where the fallback
is a small read of each file) and hands the new text to the kernel, as a write(2) to the sysctl would; the file
is then rewritten with the value the kernel kept (a rejected value is reverted, as a
re-read of the sysctl would show; the writer's write(2) itself cannot fail).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
from collections.abc import Callable
from dataclasses import dataclass

from .kernel import Kernel
from .kernel.errors import KernelError
from .kernel.version import proc_version

log = logging.getLogger(__name__)


def _rewrite(path: str, text: str, what: str) -> str:
    """Replace the content of one mirrored file (a failure is logged, not raised)."""
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        log.warning("%s %s: %s", what, path, e)
    return text


PROC_FILES = ("kallsyms", "modules", "version")
def proc_modules(kernel: Kernel) -> str:
    """/proc/modules: the loaded Python modules, then the reference kernel's."""
    return kernel.modules.modules_text()


def proc_kallsyms(kernel: Kernel) -> str:
    """/proc/kallsyms: the kernel's symbols, then the Python modules' functions as a
    module's local text symbols (``t name\t[module]``)."""
    lines = [line + "\n" for line in kernel.kallsyms.text_lines()]
    lines += [f"{addr:016x} t {name}\t[{mod}]\n"
              for addr, (name, mod) in sorted(kernel.module_syms.items())]
    return "".join(lines)


def write_proc_files(kernel: Kernel, root: str) -> None:
    """The /proc files of the simulated kernel (``PROC_FILES``) under ``root``."""
    texts = {"kallsyms": proc_kallsyms(kernel), "modules": proc_modules(kernel),
             "version": proc_version()}
    for name in PROC_FILES:
        with open(os.path.join(root, name), "w") as f:
            f.write(texts[name])


IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


class _Inotify:
    """The libc inotify calls (the standard library has none): one descriptor that turns
    readable when a watched file is written."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.fd: int = fd
        self._poll = select.poll()     # asked before every request: a poll is cheaper
        self._poll.register(fd, select.POLLIN)   # than a read failing with EAGAIN

    def watch(self, path: str) -> None:
        if self._add(self.fd, os.fsencode(path), IN_MODIFY | IN_CLOSE_WRITE) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")

    def changed(self) -> bool:
        """Whether any watched file was written since the last call (drains the events)."""
        if not self._poll.poll(0):
            return False
        seen = False
        while True:
            try:
                if not os.read(self.fd, 4096):
                    return seen
            except BlockingIOError:
                return seen
            seen = True

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class _Sysctl:
    """One mirrored sysctl: the kernel's handlers and the text last written to its file."""

    read: Callable[[], str]
    write: Callable[[str], None]
    text: str | None = None


@dataclass
class _Published:
    """One published debugfs file: the kernel's show function and the text last written."""

    read: Callable[[], str]
    text: str | None = None


class SysctlMirror:
    """Plain files under ``root`` kept in step with ``kernel.sysctls``; optionally also
    the kernel's read-only debugfs files (``kernel.debugfs``, e.g. kprobes/list) under
    ``debugfs_root``, republished after every request that may have changed them."""

    def __init__(self, kernel: Kernel, root: str | None, debugfs_root: str | None = None) -> None:
        self.kernel = kernel
        self.root = root
        self.entries: dict[str, _Sysctl] = {}
        self.published: dict[str, _Published] = {}
        self.made_dirs: list[str] = []
        self.inotify: _Inotify | None = None
        if debugfs_root:
            self._add_debugfs(debugfs_root)
        if root is None:
            return
        for rel, (read, write) in sorted(kernel.sysctls.items()):
            path = os.path.join(root, rel)
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                log.warning("sysctl %s: %s exists, not mirrored", rel, path)
                continue
            except OSError as e:
                log.warning("sysctl %s: cannot create %s: %s", rel, path, e)
                continue
            os.close(fd)
            self.entries[path] = _Sysctl(read, write)
            self._publish(path)
        if self.entries:
            try:
                self.inotify = _Inotify()
                for path in self.entries:
                    self.inotify.watch(path)
            except OSError as e:
                log.info("sysctl mirror: no inotify (%s): each file is read per request", e)
                if self.inotify is not None:
                    self.inotify.close()
                self.inotify = None

    def _publish(self, path: str) -> None:
        ent = self.entries[path]
        ent.text = _rewrite(path, ent.read(), "sysctl")

    def sync(self) -> None:
        """Apply the files written since the last call (compared by content: a tmpfs
        mtime is too coarse to see two quick writes)."""
        if self.inotify is not None and not self.inotify.changed():
            return
        for path, ent in self.entries.items():
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                continue
            if text == ent.text:
                continue
            try:
                ent.write(text)
            except KernelError as e:
                log.info("sysctl %s: %r rejected (errno %d)", path, text, e.errno)
            self._publish(path)

    def _add_debugfs(self, root: str) -> None:
        for rel, read in sorted(self.kernel.debugfs.items()):
            path = os.path.join(root, rel)
            parent = os.path.dirname(path)
            try:
                if not os.path.isdir(parent):
                    os.makedirs(parent, mode=0o700)
                    self.made_dirs.append(parent)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            except OSError as e:
                log.warning("debugfs %s: cannot create %s: %s", rel, path, e)
                continue
            os.close(fd)
            self.published[path] = _Published(read)
        self.publish()

    def publish(self) -> None:
        """Rewrite the debugfs files whose text changed (after a request)."""
        for path, ent in self.published.items():
            text = ent.read()
            if text != ent.text:
                ent.text = _rewrite(path, text, "debugfs")

    def close(self) -> None:
        """Remove the files (and directories) this mirror created."""
        for path in [*self.entries, *self.published]:
            try:
                os.unlink(path)
            except OSError:
                pass
        for d in reversed(self.made_dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.entries.clear()
        self.published.clear()
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None

"""``tracefs-sim MOUNTPOINT``: boot a simulated kernel and serve its tracefs in the foreground.

``tracefs-sim run [options] -- CMD`` is dispatched to :mod:`tracefs_sim.run`.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import logging
import os
import sys
from collections.abc import Callable

from . import run
from .fuse import serve
from .fuse.caller import possible_cpus
from .host.feed import TracerFeed
from .kernel import Kernel
from .sysctl_mirror import SysctlMirror, write_proc_files
from .tracefs import build_tree
from .tracefs.node import Dir


def _load_factory(spec: str) -> Callable[[Kernel], Dir]:
    """``--tree-factory module:function``: a test's tree instead of tracefs's."""
    module, _, func = spec.partition(":")
    if not module or not func:
        raise SystemExit(f"--tree-factory: expected module:function, got {spec!r}")
    return getattr(importlib.import_module(module), func)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="tracefs-sim",
        usage="tracefs-sim [options] MOUNTPOINT\n       tracefs-sim run [options] [-- CMD ARGS...]",
        description="Mount a simulated Linux 6.12 tracefs (foreground).",
        epilog="subcommands:\n"
               "  run [options] [-- CMD ARGS...]\n"
               "                        run CMD (default: $SHELL) traced, in a private mount namespace\n"
               "                        where the tracing mounts, /proc/kallsyms, the tracing sysctls\n"
               "                        and the CPU count are the simulator's (tracefs-sim run --help)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mountpoint")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs (default: the machine's possible CPUs)")
    ap.add_argument("--seed", type=int, default=None, help="deterministic kernel with this seed")
    ap.add_argument("--buffer-kb", type=int, default=1408, help="per-CPU ring buffer size")
    ap.add_argument("--allow-other", action="store_true", help="let other users access the mount")
    ap.add_argument("--debug", action="store_true", help="debug logging (and libfuse's request log)")
    ap.add_argument("--module", action="append", default=[], metavar="FILE.py",
                    help="load a Python kernel module (its init_module(kernel, **args)) before "
                         "mounting; cleanup_module(kernel) runs at unmount (repeatable)")
    ap.add_argument("--module-arg", action="append", default=[], metavar="K=V",
                    help="a parameter for the modules' init_module (repeatable)")
    ap.add_argument("--proc-dir", default=None, metavar="DIR",
                    help="write the simulated kernel's /proc files (kallsyms, modules, version) "
                         "under DIR (tracefs-sim run shows them in place of the host's)")
    ap.add_argument("--sysctl-dir", default=None, metavar="DIR",
                    help="mirror the simulated kernel's sysctls as files under DIR (e.g. a tmpfs "
                         "shadowing /proc/sys in a private mount namespace: tracefs-sim run)")
    ap.add_argument("--debugfs-dir", default=None, metavar="DIR",
                    help="publish the simulated kernel's debugfs files (kprobes/list) under DIR "
                         "(e.g. a tmpfs on /sys/kernel/debug in a private mount namespace)")
    ap.add_argument("--tracer-fd", type=int, default=None, metavar="FD",
                    help="the server's end of the host tracer's socket (tracefs-sim run)")
    ap.add_argument("--tracer-pid", type=int, default=None, metavar="PID",
                    help="the host tracer's pid (signalled after each control message)")
    ap.add_argument("--tree-factory", default=None, help=argparse.SUPPRESS)  # tests: module:function
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # ``tracefs-sim run [options] -- CMD``: tracefs_sim/run.py
        return run.main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.path.isdir(args.mountpoint):
        print(f"tracefs-sim: not a directory: {args.mountpoint}", file=sys.stderr)
        return 2
    nr_cpus = args.cpus if args.cpus and args.cpus > 0 else possible_cpus()
    kernel = Kernel(nr_cpus=nr_cpus, seed=args.seed, buffer_kb=args.buffer_kb)
    if kernel.deterministic and args.tracer_fd is None:
        # host forks are not watched: simulate a requester's start
        kernel.workload.hostprocs.synth_host_start = True
    tree = _load_factory(args.tree_factory)(kernel) if args.tree_factory else build_tree(kernel)
    params: dict[str, str] = {}
    for kv in args.module_arg:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            print(f"tracefs-sim: --module-arg: expected K=V, got {kv!r}", file=sys.stderr)
            return 2
        params[key] = value
    loaded: list[str] = []
    mirror: SysctlMirror | None = None
    feed: TracerFeed | None = None
    try:
        for path in args.module:
            try:
                kernel.insmod(path, **params)
            except OSError as e:
                print(f"tracefs-sim: --module {path}: {e}", file=sys.stderr)
                return 1
            loaded.append(os.path.splitext(os.path.basename(path))[0])
        if args.tracer_fd is not None:
            if args.tracer_pid is None:
                print("tracefs-sim: --tracer-fd needs --tracer-pid", file=sys.stderr)
                return 2
            feed = TracerFeed(kernel, args.tracer_fd, args.tracer_pid)
        if args.proc_dir:
            proc_dir = args.proc_dir
            write_proc_files(kernel, proc_dir)
            # a module loaded or removed later (tracefs-sim insmod) shows there too
            kernel.modules.register_module_notifier(
                lambda state, mod: write_proc_files(kernel, proc_dir))
        if args.sysctl_dir or args.debugfs_dir:
            mirror = SysctlMirror(kernel, args.sysctl_dir, args.debugfs_dir)
        mount_and_serve = functools.partial(serve.run, args.mountpoint, kernel, tree,
                                            allow_other=args.allow_other, debug=args.debug,
                                            sysctl=mirror, feed=feed)
        profile = os.environ.get("TRACEFS_SIM_PROFILE")
        if not profile:
            return mount_and_serve()
        # a developer's view of where the server's time goes (scripts/ftracetest passes
        # the variable through): the cProfile stats file is written at unmount
        prof = cProfile.Profile()
        try:
            return prof.runcall(mount_and_serve)
        finally:
            prof.dump_stats(profile)
    finally:
        if feed is not None:
            feed.close()
        if mirror is not None:
            mirror.close()
        for name in reversed(loaded):
            kernel.rmmod(name)


if __name__ == "__main__":
    sys.exit(main())

"""``tracefs-sim MOUNTPOINT``: boot a simulated kernel and serve its tracefs in the foreground."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any


def possible_cpus(path: str = "/sys/devices/system/cpu/possible") -> int:
    """Number of possible CPUs (what sysconf(_SC_NPROCESSORS_CONF) and trace-cmd use)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    highest = -1
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            highest = max(highest, int(hi or lo))
        except ValueError:
            continue
    return highest + 1 if highest >= 0 else (os.cpu_count() or 1)


def _load_factory(spec: str) -> Callable[[Any], Any]:
    module, _, func = spec.partition(":")
    if not module or not func:
        raise SystemExit(f"--tree-factory: expected module:function, got {spec!r}")
    return getattr(importlib.import_module(module), func)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="tracefs-sim",
                                 description="Mount a simulated Linux 6.12 tracefs (foreground).")
    ap.add_argument("mountpoint")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs (default: the machine's possible CPUs)")
    ap.add_argument("--seed", type=int, default=None, help="deterministic kernel with this seed")
    ap.add_argument("--buffer-kb", type=int, default=1408, help="per-CPU ring buffer size")
    ap.add_argument("--allow-other", action="store_true", help="let other users access the mount")
    ap.add_argument("--debug", action="store_true", help="debug logging (and libfuse's request log)")
    ap.add_argument("--tree-factory", default=None, help=argparse.SUPPRESS)  # tests: module:function
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.path.isdir(args.mountpoint):
        print(f"tracefs-sim: not a directory: {args.mountpoint}", file=sys.stderr)
        return 2
    from . import fuse
    from .kernel import Kernel

    nr_cpus = args.cpus if args.cpus and args.cpus > 0 else possible_cpus()
    kernel = Kernel(nr_cpus=nr_cpus, seed=args.seed, buffer_kb=args.buffer_kb)
    if args.tree_factory:
        tree = _load_factory(args.tree_factory)(kernel)
    else:
        from .tracefs import build_tree

        tree = build_tree(kernel)
    return fuse.run(args.mountpoint, kernel, tree, allow_other=args.allow_other, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

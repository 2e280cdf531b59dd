"""The tracefs file tree over a booted ``Kernel``."""

from __future__ import annotations

from ..kernel import Kernel
from .node import Dir
from .trace_files import build_top_level


def build_tree(kernel: Kernel) -> Dir:
    """Build the top-level tracing directory for ``kernel``."""
    return build_top_level(kernel)

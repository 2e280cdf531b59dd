"""The simulated Linux 6.12 kernel: pure Python, no pyfuse3/trio.

``Kernel`` owns every subsystem (no module-level state), so tests boot many.
"""

from .core import Kernel

__all__ = ["Kernel"]

"""tracefs-sim: a tracefs-compatible file system over a simulated Linux 6.12 kernel.

Importing this package pulls in neither pyfuse3 nor trio: the simulated kernel
(`tracefs_sim.kernel`) and the file tree (`tracefs_sim.tracefs`) are pure Python;
only `tracefs_sim.fuse` talks to FUSE.
"""

__version__ = "0.1.0"

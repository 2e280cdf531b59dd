"""Host-facing layer: tracing the user's own programs under ``tracefs-sim run``.

``tracer.c`` (built into ``tracefs-sim-tracer`` by :mod:`tracefs_sim.host.build`) ptraces a
command and all its descendants and reports what they do over a socket; :mod:`.proto` is the
wire format, :mod:`.capture` the table of syscall arguments the tracer copies out of the
tracee's memory, :mod:`.channel` the server's end of the socket and :mod:`.dump` a
stand-alone consumer that prints the records.  The design is docs/host-tracing.md.

This package may use the kernel package's pure data (the syscall table); the kernel and the
file tree never import it.
"""

"""The pyfuse3 adapter: maps FUSE requests onto the tracefs tree, and nothing else.

The tree (``tracefs/``) never sees pyfuse3 or trio; this package never interprets
tracing.  One module per concern (see ../shared/notes/fuse.md for the measurements
behind each choice):

* ``handlers`` — the request handlers (``Operations``): node lookup, the caller's
  syscall around each tree operation, blocking reads and poll, one error boundary;
* ``inodes`` — inode numbers per ``Node``, never reused, with kernel lookup counts;
* ``caller`` — who is calling: comm, CPU, pending signals, O_NONBLOCK, from /proc;
* ``serve`` — ``run()``: the session under trio, signals, idle ticker, clean unmount.

Ownership rules (chown, remount ``uid=``/``gid=``) are tracefs's, in
``tracefs/ownership.py``.
"""

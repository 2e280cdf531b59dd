"""Who owns a tracefs inode: the mount's uid/gid, chown/chgrp, remount options.

fs/tracefs/inode.c: ``set_tracefs_inode_owner()`` runs at every permission check and
getattr.  An inode whose uid (gid) was never set by chown/chgrp (no
``TRACEFS_UID_PERM_SET``) takes its root's: for a file of an instance the instance
directory's when that one was chowned, else the mount root's.  ``tracefs_setattr()``
marks the inode's own owner; ``tracefs_apply_options()`` at a remount with ``uid=`` /
``gid=`` gives every inode the new owner and clears those marks.

The tree creates eventfs nodes lazily (an event directory may be a new object at the
next lookup), so the marks are kept per path, as a path names one inode for the life of
its instance.  Paths are those of the tree from its root: ``""`` is the root,
``/instances/foo/trace`` a file of instance ``foo``.
"""

from __future__ import annotations

Owner = tuple[int | None, int | None]     # (uid, gid) set by chown/chgrp; None: never set


class Ownership:
    """The owner rules of one tracefs mount (one per mount: the superblock's)."""

    def __init__(self, uid: int, gid: int) -> None:
        self.uid = uid      # the root inode's, from the mount (or remount) options
        self.gid = gid
        self._set: dict[str, Owner] = {}

    def owner_of(self, path: str) -> tuple[int, int]:
        """set_tracefs_inode_owner(): the inode's own chown/chgrp, else its root's (the
        instance directory for files of an instance), else the mount's uid/gid."""
        uid, gid = self._set.get(path, (None, None))
        if uid is None or gid is None:
            parts = path.split("/")
            if len(parts) > 3 and parts[1] == "instances":
                ruid, rgid = self._set.get("/".join(parts[:3]), (None, None))
                uid = ruid if uid is None else uid
                gid = rgid if gid is None else gid
        return (self.uid if uid is None else uid, self.gid if gid is None else gid)

    def chown(self, path: str, uid: int | None, gid: int | None) -> None:
        """tracefs_setattr() with ATTR_UID (``uid``) and/or ATTR_GID (``gid``); None
        leaves that half as it was."""
        old_uid, old_gid = self._set.get(path, (None, None))
        self._set[path] = (old_uid if uid is None else uid, old_gid if gid is None else gid)

    def mkdir(self, parent: str, path: str) -> None:
        """A new instance directory ``path`` under ``parent``: it takes the parent's
        explicit owner (a name reused after rmdir starts afresh)."""
        self._set.pop(path, None)
        if parent in self._set:
            self._set[path] = self._set[parent]

    def rmdir(self, path: str) -> None:
        """The inodes of ``path`` and below are gone, and their marks with them."""
        for p in [p for p in self._set if p == path or p.startswith(path + "/")]:
            del self._set[p]

    def remount(self, options: str) -> None:
        """tracefs_apply_options(remount=true): ``uid=N`` / ``gid=N`` become the mount's
        owner and reset that half of every inode's chown/chgrp; other options (and
        malformed values) change nothing here."""
        for opt in options.split(","):
            key, _, val = opt.partition("=")
            if key not in ("uid", "gid") or not val.isdigit():
                continue
            if key == "uid":
                self.uid = int(val)
                self._set = {p: (None, gid) for p, (_, gid) in self._set.items()}
            else:
                self.gid = int(val)
                self._set = {p: (uid, None) for p, (uid, _) in self._set.items()}

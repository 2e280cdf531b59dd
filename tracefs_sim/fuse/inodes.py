"""FUSE inode numbers for the tree's nodes, with the kernel's lookup counts.

The tree hands out ``Node`` objects; FUSE speaks inode numbers.  One number per Node
object, never reused (a removed instance's files must never be confused with a new
one's of the same name: the VFS may still hold the old inode).  A node the kernel has
looked up stays alive here until FORGET drops its count to zero; a node nobody holds
any more disappears from the weak maps with its last reference in the tree.

Beside the number, each inode keeps what only its place in the tree tells: its parent
(for ``..``), its path from the root (the ownership rules, the absolute pathname a
syscall carries), its name (the ``struct file`` name a probe prints) and whether its
dentry is *stable* — it stays as long as its parent (``Dir.stable_child``), so the VFS
may cache it and its attributes.
"""

from __future__ import annotations

import weakref

import pyfuse3

from ..tracefs.node import Dir, Node

ROOT_INODE: int = pyfuse3.ROOT_INODE


class InodeTable:
    """Inode numbers and lookup counts of one mount."""

    def __init__(self, root: Dir) -> None:
        self._ino_of: weakref.WeakKeyDictionary[Node, int] = weakref.WeakKeyDictionary()
        self._node_of: weakref.WeakValueDictionary[int, Node] = weakref.WeakValueDictionary()
        self._pinned: dict[int, Node] = {}  # inodes the kernel holds (lookup count > 0)
        self._lookups: dict[int, int] = {}
        self._parent: dict[int, int] = {}
        self._paths: dict[int, str] = {ROOT_INODE: ""}
        self._names: dict[int, str] = {}
        self._stable: set[int] = {ROOT_INODE}  # inodes whose dentry may be cached
        self._next_ino = ROOT_INODE + 1
        self._ino_of[root] = ROOT_INODE
        self._node_of[ROOT_INODE] = root
        self._pinned[ROOT_INODE] = root
        self._parent[ROOT_INODE] = ROOT_INODE

    def ino(self, node: Node, parent: int | None = None, name: str = "") -> int:
        """The inode number of ``node`` (a new one the first time it is seen), found as
        ``name`` in directory ``parent``."""
        ino = self._ino_of.get(node)
        if ino is None:
            ino = self._next_ino
            self._next_ino += 1
            self._ino_of[node] = ino
            self._node_of[ino] = node
        if parent is not None and node.is_dir:
            self._parent[ino] = parent
        if name:
            self._names[ino] = name
            if parent is not None:
                self._paths[ino] = f"{self._paths.get(parent, '')}/{name}"
                pnode = self._node_of.get(parent)
                if (parent in self._stable and isinstance(pnode, Dir)
                        and pnode.stable_child(name)):
                    self._stable.add(ino)
        return ino

    def node(self, ino: int) -> Node | None:
        """The node of ``ino``, None when it is gone from the tree and not held."""
        return self._node_of.get(ino)

    def parent(self, ino: int) -> int:
        """The directory ``ino`` was found in (``..``); the root is its own parent."""
        return self._parent.get(ino, ROOT_INODE)

    def path(self, ino: int) -> str:
        """Path from the root of the tree: ``""`` for the root, ``/instances/foo``."""
        return self._paths.get(ino, "")

    def name(self, ino: int) -> str:
        """The name ``ino`` was last found under (``""`` for the root)."""
        return self._names.get(ino, "")

    def stable(self, ino: int) -> bool:
        """True when the VFS may keep the dentry and attributes of ``ino``."""
        return ino in self._stable

    def count_lookup(self, ino: int, node: Node) -> None:
        """One more kernel reference (LOOKUP, MKDIR, CREATE, READDIRPLUS entry)."""
        self._lookups[ino] = self._lookups.get(ino, 0) + 1
        self._pinned[ino] = node

    def lookups(self, ino: int) -> int:
        return self._lookups.get(ino, 0)

    def forget(self, ino: int, nlookup: int) -> None:
        """FORGET: the kernel dropped ``nlookup`` references.  At zero the node is no
        longer held; once it is gone from the tree too, its number is never seen again."""
        left = self._lookups.get(ino, 0) - nlookup
        if left > 0:
            self._lookups[ino] = left
            return
        self._lookups.pop(ino, None)
        if ino == ROOT_INODE:
            return
        self._pinned.pop(ino, None)
        if ino not in self._node_of:
            self._parent.pop(ino, None)
            self._paths.pop(ino, None)
            self._names.pop(ino, None)
            self._stable.discard(ino)

    def held(self) -> list[int]:
        """Inodes the kernel holds (may have cached attributes)."""
        return list(self._lookups)

    def below(self, path: str) -> list[int]:
        """Inodes whose path is under ``path`` (not ``path`` itself)."""
        prefix = path + "/"
        return [ino for ino, p in self._paths.items() if p.startswith(prefix)]

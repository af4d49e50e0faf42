"""The values gitexp.git speaks in that need no libgit2: object ids, file modes, tree entries.

They live apart from handle.py so that what only names them (the journal of a live run, read by
every `git exp ls` while a run is live) does not import pygit2 (75 ms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ZERO = "0" * 40
# git's own modes (tree entries hold them as these octal numbers): pygit2.enums.FileMode's values.
TREE_MODE = 0o040000
BLOB_MODE = 0o100644
EXEC_MODE = 0o100755
LINK_MODE = 0o120000

# A tree to build: name -> blob bytes, a nested mapping (subtree), or an existing object
# given as Entry (used to reuse the code snapshot tree and unchanged metric blobs for free).
TreeSpec = Mapping[str, "bytes | TreeSpec | Entry"]


@dataclass(frozen=True)
class Entry:
    oid: str
    mode: int = BLOB_MODE

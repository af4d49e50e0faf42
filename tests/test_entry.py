"""gitexp/git/entry.py: the modes it names are git's and libgit2's, without importing pygit2."""

from __future__ import annotations

import subprocess
import sys

from pygit2.enums import FileMode

from gitexp.git import entry


def test_the_modes_are_libgit2s() -> None:
    ours = (entry.TREE_MODE, entry.BLOB_MODE, entry.EXEC_MODE, entry.LINK_MODE)
    assert ours == tuple(map(int, (FileMode.TREE, FileMode.BLOB, FileMode.BLOB_EXECUTABLE, FileMode.LINK)))


def test_importing_it_or_the_journal_does_not_import_pygit2() -> None:
    script = "import sys, gitexp.git.entry, gitexp.store.journal; print('pygit2' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip() == "False"

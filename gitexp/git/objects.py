"""Reading objects: blobs, trees and their entries, notes trees, commits, diffs between trees, and history."""

from __future__ import annotations

import pygit2

from gitexp.errors import StorageError
from gitexp.git.handle import TREE_MODE, Entry, Handle

_patches: dict[tuple[str | None, str], str] = {}


class ObjectReader(Handle):
    """What the repository's objects hold; a missing or unreadable one is a StorageError."""

    def read_blob(self, oid: str) -> bytes:
        try:
            return self._r[oid].peel(pygit2.Blob).data
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read blob {oid[:12]} in {self.gitdir}: {exc}") from exc

    def read_path(self, commit: str, path: str) -> bytes | None:
        """Bytes of the blob at *path* in *commit*'s tree, or None when absent."""
        tree = self._peel(commit, pygit2.Tree)
        try:
            obj = tree[path]
        except KeyError:
            return None
        if obj.type != pygit2.enums.ObjectType.BLOB:
            return None
        return obj.data

    def read_commit_path(self, commit: str, path: str) -> tuple[bool, bytes | None]:
        """(whether *commit* is a commit, the bytes of the blob at *path* in its tree or None), with
        one lookup of the commit and its tree: read_path also reads a tree's path, which a run's
        listing must refuse (check_commit says what the object is)."""
        try:
            obj = self._r[commit]
            if obj.type != pygit2.enums.ObjectType.COMMIT:
                return False, None
            tree = obj.tree
        except (KeyError, ValueError):
            return False, None
        except pygit2.GitError as exc:
            raise StorageError(f"cannot read the tree of commit {commit[:12]}: {exc}") from exc
        try:
            blob = tree[path]
        except KeyError:
            return True, None
        return True, blob.data if isinstance(blob, pygit2.Blob) else None

    def entry_oid(self, commit: str, path: str) -> str | None:
        """Id of whatever is at *path* in *commit*'s tree (a blob or a subtree), or None."""
        try:
            return str(self._r[commit].peel(pygit2.Tree)[path].id)
        except KeyError:
            return None
        except (ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read {path} in commit {commit[:12]}: {exc}") from exc

    def tree_of(self, commit: str) -> str:
        return str(self._peel(commit, pygit2.Tree).id)

    def tree_entries(self, commit: str, path: str = "") -> dict[str, Entry]:
        tree = self._peel(commit, pygit2.Tree)
        if path:
            try:
                found = self._r[tree[path].id]
            except KeyError:
                return {}
            if not isinstance(found, pygit2.Tree):
                return {}
            tree = found
        return {e.name: Entry(str(e.id), int(e.filemode)) for e in tree}

    def tree_files(self, commit: str, path: str = "") -> dict[str, Entry]:
        """Every non-tree entry under *path* of a commit's (or tree's) tree, by relative path."""
        try:
            root = self._r[commit].peel(pygit2.Tree)
            found = self._r[root[path].id] if path else root
        except KeyError:
            return {}
        except (ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read tree {path or '/'} of {commit[:12]}: {exc}") from exc
        if not isinstance(found, pygit2.Tree):
            return {}
        out: dict[str, Entry] = {}
        stack: list[tuple[str, pygit2.Tree]] = [("", found)]
        while stack:
            prefix, node = stack.pop()
            for entry in node:
                if int(entry.filemode) == TREE_MODE:
                    stack.append((f"{prefix}{entry.name}/", self._subtree(entry)))
                else:
                    out[f"{prefix}{entry.name}"] = Entry(str(entry.id), int(entry.filemode))
        return out

    def notes_map(self, notes_commit: str) -> dict[str, str]:
        """annotated object id -> note blob id of a notes commit, whatever its fan-out
        (git splits the ids into directories, e.g. ab/cdef..., once there are many notes)."""
        return self._notes_in(self._peel(notes_commit, pygit2.Tree))

    def _notes_in(self, root: pygit2.Tree) -> dict[str, str]:
        """notes_map of the notes tree *root*."""
        out: dict[str, str] = {}
        stack: list[tuple[str, pygit2.Tree]] = [("", root)]
        while stack:
            prefix, tree = stack.pop()
            for entry in tree:
                name = f"{prefix}{entry.name}"
                if int(entry.filemode) == TREE_MODE:
                    if len(name) < 40:
                        stack.append((name, self._subtree(entry)))
                elif len(name) == 40:
                    out[name] = str(entry.id)
        return out

    def commit_info(self, commit: str) -> tuple[list[str], str, int]:
        c = self._peel(commit, pygit2.Commit)
        return [str(p) for p in c.parent_ids], c.message, c.commit_time

    def walk(self, start: str, limit: int) -> list[tuple[str, list[str], str, int]]:
        """(id, parents, message, commit time) of up to *limit* commits reachable from *start*,
        newest first, as `git log` lists them."""
        out: list[tuple[str, list[str], str, int]] = []
        try:
            order = pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME  # children first, as git log
            for commit in self._r.walk(pygit2.Oid(hex=start), order):
                if len(out) >= limit:
                    break
                out.append((str(commit.id), [str(p) for p in commit.parent_ids], commit.message,
                            commit.commit_time))
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot walk the history of {start[:12]}: {exc}") from exc
        return out

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when *ancestor* is *descendant* or one of its ancestors."""
        if ancestor == descendant:
            return True
        try:
            return self._r.descendant_of(pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor))
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot compare commits {ancestor[:12]} and {descendant[:12]}: {exc}") from exc

    def resolve_commit(self, text: str) -> str | None:
        """The commit a revision (HEAD, a branch, an abbreviated id) names, or None."""
        try:
            return str(self._r.revparse_single(text).peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    def is_signed(self, commit: str) -> bool:
        try:
            signature, _ = self._r[commit].peel(pygit2.Commit).gpg_signature
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read commit {commit[:12]}: {exc}") from exc
        return signature is not None

    def diff_trees(self, old: str | None, new: str) -> str:
        """A unified patch from tree *old* (None: empty) to tree *new*."""
        cached = _patches.get((old, new))  # trees never change, so neither does their diff
        if cached is None:
            new_tree = self._r[new].peel(pygit2.Tree)
            diff = self._r[old].peel(pygit2.Tree).diff_to_tree(new_tree) if old else new_tree.diff_to_tree(swap=True)
            if len(_patches) > 64:
                _patches.clear()
            cached = _patches[(old, new)] = diff.patch or ""
        return cached

    def diff_stat(self, old: str | None, new: str | None) -> list[tuple[str, str, int, int]]:
        """(status letter A/D/M/R..., path, lines added, lines deleted) per file from tree *old* to *new*
        (None: the empty tree); binary files count 0 lines."""
        if old == new:
            return []
        try:
            if old is not None and new is not None:
                diff = self._r[old].peel(pygit2.Tree).diff_to_tree(self._r[new].peel(pygit2.Tree))
            elif old is not None:  # every file deleted
                diff = self._r[old].peel(pygit2.Tree).diff_to_tree()
            elif new is not None:  # every file added
                diff = self._r[new].peel(pygit2.Tree).diff_to_tree(swap=True)
            else:
                return []
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot diff trees {str(old)[:12]} and {str(new)[:12]}: {exc}") from exc
        out = []
        for patch in diff:
            if patch is None:  # libgit2 makes none only for an unmodified file, which this diff does not list
                continue
            delta = patch.delta
            _, added, deleted = patch.line_stats
            out.append((delta.status_char(), delta.new_file.path or delta.old_file.path, added, deleted))
        return out

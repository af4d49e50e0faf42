"""The git layer: the only code that imports pygit2 or reads git's own files.

It owns the object database (reading trees and blobs, writing packs with a `.keep` until a ref
reaches them, merging them so their count stays bounded), refs moved by compare-and-swap, the
file-level readers that answer without opening a repository (loose and packed refs, HEAD, reflogs),
commit signing, transport through the user's `git`, many commits' files read by one `git cat-file`
(catfile.py), and the Git LFS store and pointers. It knows
nothing of runs: it speaks of commits, trees, blobs and refs. It may import only gitexp.errors and
gitexp.warn.

Repo (repo.py) is put together from handle, config, objects, staging, refs and snapshot (see repo.py);
RepoReader (reader.py) is what reading runs asks of a repository, which Repo answers and LazyRepo
(lazyrepo.py) answers from gitfiles.py until it must open a Repo.
"""

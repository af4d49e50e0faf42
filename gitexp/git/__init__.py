"""The git layer: the only code that imports pygit2 or reads git's own files.

It owns the object database (reading trees and blobs, writing packs with a `.keep` until a ref
reaches them, merging them so their count stays bounded), refs moved by compare-and-swap, the
file-level readers that answer without opening a repository (loose and packed refs, HEAD), commit
signing, transport through the user's `git`, and the Git LFS store and pointers. It knows nothing of
runs: it speaks of commits, trees, blobs and refs. It may import only gitexp.errors and gitexp.warn.
"""

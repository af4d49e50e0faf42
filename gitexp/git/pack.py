"""Git object encoding, pack writing and merging, in plain Python.

A run commit adds about eight small objects. Written loose, each is a file create plus a
rename, which costs 0.3-1.5 ms on common ext4 set-ups; written as one pack (pack v2 with
its v2 index, as specified in git's Documentation/gitformat-pack.txt) it is two files
whatever the object count. git and libgit2 read such packs like any other, and
gitexp/git/maintenance.py folds small packs together.

Objects under STORE_BELOW bytes are written as stored (uncompressed) deflate blocks: zlib's
set-up costs 15-20 µs a call in a busy process, a quarter of a millisecond for the dozen small
objects of a run, to save about 80 bytes each. Larger objects are compressed.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from gitexp.git import spares

COMMIT, TREE, BLOB = 1, 2, 3
STORE_BELOW = 1024
_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob"}


# Copying a hash object skips OpenSSL's look-up of the algorithm, which hashlib.sha1() does each
# call (a run hashes a dozen objects).
_SHA1 = hashlib.sha1()


def object_id(kind: int, data: bytes) -> str:
    digest = _SHA1.copy()
    digest.update(b"%s %d\0" % (_NAMES[kind], len(data)))
    digest.update(data)
    return digest.hexdigest()


def encode_tree(entries: dict[str, tuple[int, str]]) -> bytes:
    """A tree object's content from name -> (mode, hex oid), in git's entry order."""
    # Git sorts entries as if tree names ended with '/'.
    def order(name: str) -> bytes:
        return name.encode() + (b"/" if entries[name][0] == 0o040000 else b"")

    return b"".join(
        b"%o %s\0" % (entries[name][0], name.encode()) + bytes.fromhex(entries[name][1])
        for name in sorted(entries, key=order)
    )


def encode_commit(tree: str, parents: list[str], author: str, committer: str, message: str) -> bytes:
    """A commit object's content; *author*/*committer* are 'Name <email> 1700000000 +0000'."""
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents), f"author {author}", f"committer {committer}"]
    return ("\n".join(lines) + "\n\n" + message).encode()


def _sha1(data: bytes | bytearray) -> bytes:
    digest = _SHA1.copy()
    digest.update(data)
    return digest.digest()


def _header(kind: int, size: int) -> bytes:
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(byte | 0x80)
        byte, size = size & 0x7F, size >> 7
    out.append(byte)
    return bytes(out)


def deflate(data: bytes, variant: int = 0) -> bytes:
    """*data* as a zlib stream (RFC 1950), stored as is when small (see the module's docstring).

    Each *variant* adds an empty stored block after the header: the same data, other bytes, so
    that a pack of the same objects gets another name (write_pack).
    """
    if len(data) >= STORE_BELOW:
        stream = zlib.compress(data, 1)
    else:
        # Header 0x78 0x01 (32 KiB window, no dictionary), one final stored block, then Adler-32.
        stream = (b"\x78\x01\x01" + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data
                  + struct.pack(">I", zlib.adler32(data)))
    # An empty stored block that is not the last: BFINAL 0, BTYPE 00, padding, LEN 0, NLEN 0xFFFF.
    return stream[:2] + b"\x00\x00\x00\xff\xff" * variant + stream[2:] if variant else stream


MAX_VARIANTS = 64


def write_pack(pack_dir: Path, objects: dict[str, tuple[int, bytes]],
               claim: Callable[[Path], bool] | None = None) -> Path:
    """Write *objects* (oid -> (kind, data)) as one pack and its index; returns the .pack path.

    *claim* is called with the .pack path before anything appears under that name; it puts the
    pack's .keep in place (gitexp/git/maintenance.py), or returns False when the name is taken (a
    pack of the same objects exists): then the pack is encoded again under another name.
    """
    for variant in range(MAX_VARIANTS):
        body = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
        offsets: dict[str, tuple[int, int]] = {}
        for oid, (kind, data) in objects.items():
            entry = _header(kind, len(data)) + deflate(data, variant if not offsets else 0)
            offsets[oid] = (len(body), zlib.crc32(entry))
            body += entry
        checksum = _sha1(body)
        digest = checksum.hex()
        if claim is None or claim(pack_dir / f"pack-{digest}.pack"):
            break
    else:
        raise OSError(f"no free name for a pack of {len(objects)} objects in {pack_dir} after {MAX_VARIANTS} tries")
    body += checksum
    _write_file(f"{os.fspath(pack_dir)}/gitexp-tmp-pack-{digest[:16]}_{os.getpid()}", body)
    return _install(pack_dir, digest, offsets)


def git_dir_of(pack_path: str | Path) -> str:
    """<git dir> for a path in <git dir>/objects/pack."""
    return os.path.dirname(os.path.dirname(os.path.dirname(pack_path)))


def _write_file(path: str, data: bytes | bytearray | memoryview) -> None:
    # Temporary names must not end in .pack/.idx nor start with tmp_: a concurrent `git gc` deletes those.
    fd = spares.open_new(git_dir_of(path), path, replace=True)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, os.fstat(fd).st_mode & 0o444)  # (read-only, as git makes packs; made 0o666 less the umask)
    finally:
        os.close(fd)


def _install(pack_dir: Path, digest: str, offsets: dict[str, tuple[int, int]]) -> Path:
    """Write the index of the pack at gitexp-tmp-pack-<digest[:16]>_<pid> (offsets: oid -> (offset, crc32))
    and move both into place: the pack first, as readers only look at indexed packs."""
    ordered = sorted(offsets)
    fanout, count = [], 0
    first_bytes = [int(oid[:2], 16) for oid in ordered]
    for byte in range(256):
        while count < len(ordered) and first_bytes[count] <= byte:
            count += 1
        fanout.append(count)
    index = bytearray(b"\377tOc" + struct.pack(">I", 2))
    index += struct.pack(">256I", *fanout)
    index += b"".join(bytes.fromhex(oid) for oid in ordered)
    index += b"".join(struct.pack(">I", offsets[oid][1]) for oid in ordered)
    index += b"".join(struct.pack(">I", offsets[oid][0]) for oid in ordered)
    index += bytes.fromhex(digest)
    index += _sha1(index)

    folder, tag = os.fspath(pack_dir), f"{digest[:16]}_{os.getpid()}"
    os.replace(f"{folder}/gitexp-tmp-pack-{tag}", f"{folder}/pack-{digest}.pack")
    _write_file(f"{folder}/gitexp-tmp-idx-{tag}", index)
    os.replace(f"{folder}/gitexp-tmp-idx-{tag}", f"{folder}/pack-{digest}.idx")
    return pack_dir / f"pack-{digest}.pack"


# (oid, start, end, crc32) of one object in a pack
Span = tuple[str, int, int, int]


def whole_spans(pack_data: bytes | mmap.mmap, index_data: bytes) -> list[Span] | None:
    """Where each object of a pack lies, read from its v2 index, when every object is stored
    whole; None for any other pack (deltas, index v1, 64-bit offsets): merge() leaves those to git."""
    if index_data[:8] != b"\377tOc\0\0\0\2" or pack_data[:4] != b"PACK" or len(index_data) < 8 + 1024 + 40:
        return None
    count = struct.unpack_from(">I", index_data, 8 + 255 * 4)[0]
    names_at = 8 + 1024
    offsets_at = names_at + count * 24
    if len(index_data) != offsets_at + count * 4 + 40 or len(pack_data) < 32:
        return None
    crcs = struct.unpack_from(f">{count}I", index_data, names_at + count * 20)
    offsets = struct.unpack_from(f">{count}I", index_data, offsets_at)
    end = len(pack_data) - 20
    if any(offset >= end for offset in offsets):  # also catches 64-bit offsets (their top bit is set)
        return None
    order = sorted(range(count), key=offsets.__getitem__)
    out = []
    for position, i in enumerate(order):
        start = offsets[i]
        stop = offsets[order[position + 1]] if position + 1 < count else end
        if stop <= start or not 1 <= (pack_data[start] >> 4) & 7 <= 4:  # commit, tree, blob, tag; no delta
            return None
        out.append((index_data[names_at + i * 20:names_at + i * 20 + 20].hex(), start, stop, crcs[i]))
    return out


def merge(pack_dir: Path, sources: Sequence[tuple[bytes | mmap.mmap, list[Span]]]) -> Path | None:
    """Write one pack holding every object of *sources* ((pack data, its whole_spans)), each once;
    None, writing nothing, when an entry does not match its index's CRC (a damaged pack)."""
    unique = {oid for _, spans in sources for oid, *_ in spans}
    tmp = f"{os.fspath(pack_dir)}/gitexp-tmp-merge-{threading.get_ident()}_{os.getpid()}"
    digest = _SHA1.copy()
    offsets: dict[str, tuple[int, int]] = {}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o444)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20, closefd=False) as out:
            header = b"PACK" + struct.pack(">II", 2, len(unique))
            out.write(header)
            digest.update(header)
            position = len(header)
            for data, spans in sources:
                for oid, start, stop, crc in spans:
                    if oid in offsets:
                        continue
                    entry = data[start:stop]
                    if zlib.crc32(entry) != crc:
                        raise _Damaged
                    offsets[oid] = (position, crc)
                    out.write(entry)
                    digest.update(entry)
                    position += stop - start
            if position >= 1 << 31:
                raise _Damaged  # 64-bit offsets, which this writer does not write: the caller merges less
            checksum = digest.digest()
            out.write(checksum)
    except _Damaged:
        os.close(fd)
        os.unlink(tmp)
        return None
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    name = checksum.hex()
    os.replace(tmp, f"{os.fspath(pack_dir)}/gitexp-tmp-pack-{name[:16]}_{os.getpid()}")
    return _install(pack_dir, name, offsets)


class _Damaged(Exception):
    pass

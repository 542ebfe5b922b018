"""An undo journal under HDF5, so that killing a writer never corrupts a dataset file.

HDF5 keeps metadata (group indexes, heaps, object headers) in a cache and writes it back
whenever it likes: between two ``flush()`` calls the bytes on disk can be any mixture
of old and new structures, and a ``kill -9`` at that moment leaves a file that no longer
opens, or opens with a dangling trajectory. HDF5 offers no transaction, so we add one
underneath it.

:class:`JournaledFile` is a Python file object that h5py drives through its ``fileobj``
driver. Before any byte that existed at the last commit is overwritten (or truncated
away), the original bytes are appended to a sidecar journal (``FILE.journal``) with a
checksum. Bytes past the committed end need no copy: undoing them is a truncate. A
commit is "HDF5 flushed, so the file is whole" followed by emptying the journal, which
is atomic. Recovery (:func:`recover`) writes the saved bytes back and truncates to the
committed size, which returns the file exactly to its last commit; it is idempotent, so
a kill during recovery is harmless too.

Every write is a plain ``pwrite`` issued after the journal entry that protects it has
been handed to the kernel, so the ordering holds against a killed process (the kernel
keeps what was written). Against power loss the commit additionally ``fsync``s, which
makes commits durable but, without an fsync per journal entry, cannot promise the same
for a transaction cut by the power going off.

A writer holds an exclusive ``flock`` on the data file for as long as it is open, which
keeps a second writer out and makes HDF5's own reader lock fail while it writes; a stale
journal is recognised as one whose file nobody holds that lock on. The journal records
the file's inode and a fingerprint of its committed head and tail, so a journal left
behind by a crashed writer is never applied to a different file that later took the
same path (inode numbers are reused, so the inode alone is not enough).
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from laom.errors import LaomError

JOURNAL_SUFFIX = ".journal"
_MAGIC = b"LAOMJNL1"
# magic, committed size, st_dev, st_ino, fingerprint of the committed bytes, crc32 of the rest
_HEADER = struct.Struct("<8sQQQ8sI")
_ENTRY = struct.Struct("<QQI")  # offset, length, crc32 of (offset, length, data)
_PRINT_HEAD, _PRINT_TAIL = 4096, 65536


def journal_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar journal of a data file."""
    path = Path(path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


def _entry_crc(offset: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(struct.pack("<QQ", offset, len(data))))


def _fingerprint(fd: int, committed: int, entries: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """Hash of the committed file's head and tail, as they were at the commit.

    Bytes changed since then are taken from the journal's saved originals, so the hash
    is the same before and after any amount of journaled writing, and differs for
    another file that happens to reuse the path, or even the inode number.
    """
    h = hashlib.blake2b(digest_size=8)
    ranges = [
        (0, min(_PRINT_HEAD, committed)),
        (max(_PRINT_HEAD, committed - _PRINT_TAIL), committed),
    ]
    for lo, hi in ranges:
        if hi <= lo:
            continue
        buf = bytearray(hi - lo)
        current = os.pread(fd, hi - lo, lo)
        buf[: len(current)] = current
        for offset, data in entries:
            a, b = max(lo, offset), min(hi, offset + len(data))
            if a < b:
                buf[a - lo : b - lo] = data[a - offset : b - offset]
        h.update(buf)
    return h.digest()


def _header(committed: int, st: os.stat_result, fingerprint: bytes) -> bytes:
    fields = (_MAGIC, committed, st.st_dev, st.st_ino, fingerprint)
    return _HEADER.pack(*fields, zlib.crc32(_HEADER.pack(*fields, 0)))


def _read_journal(
    jpath: Path,
) -> tuple[tuple[int, int, int, bytes] | None, list[tuple[int, bytes]]]:
    """(committed size, st_dev, st_ino, fingerprint) and the complete undo entries.

    A torn tail entry is dropped: it was being written when the process died, so the
    overwrite it was protecting had not started yet.
    """
    raw = jpath.read_bytes()
    if len(raw) < _HEADER.size:
        return None, []
    magic, committed, dev, ino, fingerprint, crc = _HEADER.unpack_from(raw, 0)
    if magic != _MAGIC or crc != zlib.crc32(
        _HEADER.pack(magic, committed, dev, ino, fingerprint, 0)
    ):
        raise LaomError(f"{jpath}: not a laom journal (refusing to apply it)")
    entries: list[tuple[int, bytes]] = []
    pos = _HEADER.size
    while pos + _ENTRY.size <= len(raw):
        offset, length, crc = _ENTRY.unpack_from(raw, pos)
        start = pos + _ENTRY.size
        data = raw[start : start + length]
        if len(data) < length or _entry_crc(offset, data) != crc:
            break
        entries.append((offset, data))
        pos = start + length
    return (committed, dev, ino, fingerprint), entries


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _lock(fd: int, path: Path, exclusive: bool = True) -> None:
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LaomError(
                f"{path}: the file is being written by another process; wait for it to finish"
            ) from None
        raise


def _rollback(fd: int, path: Path) -> bool:
    """Undo an unfinished transaction of ``path`` (whose lock the caller holds)."""
    jpath = journal_path(path)
    if not jpath.exists():
        return False
    header, entries = _read_journal(jpath)
    undone = False
    if header is not None:
        committed, dev, ino, fingerprint = header
        st = os.fstat(fd)
        # A journal left by a crash whose file was since deleted or replaced describes
        # another file: applying it would corrupt this one, and its own file is gone.
        if (st.st_dev, st.st_ino) == (dev, ino) and _fingerprint(
            fd, committed, entries
        ) == fingerprint:
            for offset, data in entries:
                _pwrite_all(fd, data, offset)
            if st.st_size != committed or entries:
                os.ftruncate(fd, committed)
                undone = True
            os.fsync(fd)
    jpath.unlink()
    return undone


def recover(path: str | os.PathLike[str]) -> bool:
    """Return ``path`` to its last commit if a writer died mid-transaction.

    Returns whether anything had to be undone. Raises :class:`LaomError` when a live
    writer holds the file, since its journal is then in use, not stale.
    """
    path = Path(path)
    if not journal_path(path).exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except PermissionError:
        raise LaomError(
            f"{path}: an interrupted write must be undone first (journal "
            f"{journal_path(path).name}) but the file is read-only here"
        ) from None
    try:
        _lock(fd, path)
        return _rollback(fd, path)
    finally:
        os.close(fd)  # closing drops the lock


class _Intervals:
    """Disjoint sorted [start, end) ranges already saved in the journal."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def clear(self) -> None:
        self.starts.clear()
        self.ends.clear()

    def claim(self, start: int, end: int) -> list[tuple[int, int]]:
        """Sub-ranges of [start, end) not saved yet; records them as saved."""
        gaps: list[tuple[int, int]] = []
        i = bisect.bisect_right(self.ends, start)
        pos = start
        while i < len(self.starts) and self.starts[i] < end:
            if self.starts[i] > pos:
                gaps.append((pos, self.starts[i]))
            pos = max(pos, self.ends[i])
            i += 1
        if pos < end:
            gaps.append((pos, end))
        if gaps:
            # Merge [start, end) with every range it touches: one bisect-sorted insert.
            lo = bisect.bisect_left(self.ends, start)
            hi = bisect.bisect_right(self.starts, end)
            new_start = min(start, self.starts[lo]) if lo < hi else start
            new_end = max(end, self.ends[hi - 1]) if lo < hi else end
            self.starts[lo:hi] = [new_start]
            self.ends[lo:hi] = [new_end]
        return gaps


class JournaledFile(io.RawIOBase):
    """A read/write binary file whose every change since the last commit can be undone.

    Use it as the file object of ``h5py.File(JournaledFile(path), "r+")``; call
    :meth:`commit` right after ``h5file.flush()`` at each point the file is whole.
    """

    def __init__(self, path: str | os.PathLike[str], durable: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        self.durable = durable
        self._fd = os.open(self.path, os.O_RDWR)
        self._jfd = -1
        try:
            _lock(self._fd, self.path)
            _rollback(self._fd, self.path)
            self._jfd = os.open(journal_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
            self._begin()
        except BaseException:
            self._release()
            raise
        self._pos = 0

    # -- transactions -------------------------------------------------------------
    def _begin(self) -> None:
        st = os.fstat(self._fd)
        self._committed = st.st_size
        self._saved = _Intervals()
        self._dirty = False
        os.ftruncate(self._jfd, 0)
        header = _header(self._committed, st, _fingerprint(self._fd, self._committed))
        _pwrite_all(self._jfd, header, 0)
        self._jpos = _HEADER.size

    def commit(self) -> None:
        """Make everything written so far permanent (call after ``h5file.flush()``)."""
        if self.durable:
            os.fsync(self._fd)
        self._begin()  # emptying the journal is the commit point

    @property
    def dirty(self) -> bool:
        """Whether anything was written since the last commit."""
        return self._dirty

    def _save(self, start: int, end: int) -> None:
        """Copy the committed bytes of [start, end) into the journal before they change."""
        end = min(end, self._committed)
        if start >= end:
            return
        for a, b in self._saved.claim(start, end):
            data = os.pread(self._fd, b - a, a)
            entry = _ENTRY.pack(a, len(data), _entry_crc(a, data)) + data
            _pwrite_all(self._jfd, entry, self._jpos)
            self._jpos += len(entry)

    # -- the file-object protocol h5py's fileobj driver uses ----------------------
    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = os.fstat(self._fd).st_size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = os.preadv(self._fd, [view], self._pos)
        self._pos += n
        return n

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self._save(self._pos, self._pos + len(view))
        _pwrite_all(self._fd, view, self._pos)
        self._pos += len(view)
        self._dirty = True
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if size < self._committed:
            self._save(size, self._committed)
        os.ftruncate(self._fd, size)
        self._dirty = True
        return size

    def flush(self) -> None:
        pass  # unbuffered: every write is already in the kernel

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Close without committing: an uncommitted transaction stays undoable on disk."""
        if not self.closed:
            self._release()
        super().close()

    def _release(self) -> None:
        if self._jfd >= 0:
            os.close(self._jfd)
            self._jfd = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def finish(self, commit: bool = True) -> None:
        """Close for good: keep (``commit``) or undo what was written since the last commit.

        Either way the journal is gone afterwards; the h5py handle must be closed first.
        """
        if self.closed:
            return
        if commit:
            if self.durable:
                os.fsync(self._fd)
            journal_path(self.path).unlink(missing_ok=True)
        else:
            _rollback(self._fd, self.path)
        self.close()

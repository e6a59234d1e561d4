"""Blob files: write one durably into objects/, read one back and prove it is intact.

Only the files; the rows that make a blob *valid* are `_store`'s job. The write order is
the store's crash-safety argument (Nix's `registerValidPaths` makes the same one):

1. write the bytes to a fresh file in tmp/ and fsync it;
2. rename it to objects/<h[:2]>/<h> (atomic: the final name holds nothing or all of it);
3. fsync the directory so the rename itself survives a power cut;
4. only then does the caller commit the row.

A kill before 2 leaves a tmp/ leftover; between 2 and 4 an orphan file without a row.
Both are garbage that `gc` removes, and neither can be mistaken for a stored object,
because the row is the proof. A row therefore always has its complete file behind it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ._errors import StoreError
from ._layout import Layout, object_hash


def fsync_dir(path: Path) -> None:
    """Make the entries of a directory (a rename, a new file) survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create `path` (mode 0700) if missing, and persist its entry in the parent."""
    if path.is_dir():
        return
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fsync_dir(path.parent)


def write_blob(layout: Layout, digest: str, data: bytes) -> None:
    """Put `data` at its final path, durably, by way of tmp/ (steps 1-3 above).

    Overwrites an orphan file of the same name (left by an earlier crash): renaming over
    it is atomic, and the fresh bytes are known to be complete.
    """
    final = layout.object_path(digest)
    fd, tmp_name = tempfile.mkstemp(dir=layout.tmp, prefix=f"{digest}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o444)
        ensure_dir(final.parent)
        os.replace(tmp_name, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(final.parent)


def read_blob(layout: Layout, digest: str) -> bytes:
    """The bytes of blob `digest`, re-hashed: a damaged or missing file is a StoreError."""
    path = layout.object_path(digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(
            f"object {digest} is missing its file {path}",
            "the store was damaged (a file deleted by hand?); run `pveplan store verify`, "
            "then re-plan so the object is written again",
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot read object {digest} from {path}: {exc.strerror or exc}",
            "check the permissions of the store directory",
        ) from None
    actual = object_hash(data)
    if actual != digest:
        raise StoreError(
            f"object {digest} is corrupt: {path} hashes to {actual}",
            "the file changed after it was stored (disk damage or an edit by hand); "
            "run `pveplan store verify` to find every damaged object",
        )
    return data

"""Extract a model archive without trusting it: what the platform does before `POST /models`, and what
the lean server's warm-up does with its own archive.

A tarball from a models prefix is user data. Every member is checked before anything is written: only
regular files and directories, relative names without `..`, backslashes or drive letters, and a cap on
the total extracted size and member count. Files are written by this module (never `tarfile.extract`),
so links, devices and fifos can never be created, and everything lands in a fresh temporary folder that
the caller renames into place only once extraction finished.

Works the same on every Python 3.11: `TarFile.extractall(filter=...)` only exists from 3.11.4 (Debian 12
ships 3.11.2), and is never called. Where `tarfile.data_filter` exists it runs on every member as well,
as a second opinion.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

DEFAULT_MAX_EXTRACTED_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_MEMBERS = 1000
COPY_CHUNK_BYTES = 1024 * 1024
# The stdlib's own "data" filter (3.11.4+, 3.12+); None on older interpreters.
STDLIB_DATA_FILTER = getattr(tarfile, "data_filter", None)


class UnsafeArchiveError(ValueError):
    """The archive is unreadable, or would write outside its folder, or is too big."""


def _checked_name(name: str) -> PurePosixPath:
    """The member's relative path, or UnsafeArchiveError naming why it may not be extracted."""
    if not name or "\\" in name or "\x00" in name:
        raise UnsafeArchiveError(f"member {name!r} has an empty name, a backslash or a NUL byte")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    parts = [part for part in path.parts if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"member {name!r} climbs out of the archive folder with '..'")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _member_kind(info: tarfile.TarInfo) -> str:
    if info.issym() or info.islnk():
        return f"a link to {info.linkname!r}"
    if info.ischr() or info.isblk():
        return "a device"
    if info.isfifo():
        return "a fifo"
    return f"an entry of type {info.type!r}"


def safe_extract(
    archive: Path,
    destination: Path,
    *,
    max_bytes: int = DEFAULT_MAX_EXTRACTED_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> int:
    """Extract `archive` (tar, optionally gzip) into the new folder `destination`; returns bytes written.

    `destination` must not exist. On any error it is removed again, so a caller never sees a partial tree.
    """
    destination.mkdir(parents=True, exist_ok=False)
    try:
        return _extract_members(archive, destination, max_bytes=max_bytes, max_members=max_members)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise


def _extract_members(archive: Path, destination: Path, *, max_bytes: int, max_members: int) -> int:
    written = 0
    members = 0
    root = destination.resolve()
    try:
        # Streaming mode ("r|*") reads each member once, in order, and never seeks back for links.
        with tarfile.open(archive, mode="r|*") as tar:
            for info in tar:
                members += 1
                if members > max_members:
                    raise UnsafeArchiveError(f"more than {max_members} members")
                relative = _checked_name(info.name)
                if not (info.isfile() or info.isdir()):
                    raise UnsafeArchiveError(f"member {info.name!r} is {_member_kind(info)}")
                if STDLIB_DATA_FILTER is not None:
                    STDLIB_DATA_FILTER(info, str(root))  # raises tarfile.FilterError (a TarError)
                target = root / relative
                # Defence in depth: the checks above already keep the path inside the folder.
                if target != root and root not in target.parents:
                    raise UnsafeArchiveError(f"member {info.name!r} resolves outside the archive folder")
                if info.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                written += info.size
                if written > max_bytes:
                    raise UnsafeArchiveError(f"extracts to more than {max_bytes} bytes")
                _write_file(tar, info, target)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchiveError(f"unreadable archive ({type(exc).__name__}: {exc})") from exc
    if members == 0:
        raise UnsafeArchiveError("the archive is empty")
    return written


def _write_file(tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(info)
    if source is None:  # pragma: no cover - isfile() members always have content
        raise UnsafeArchiveError(f"member {info.name!r} has no content")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        raise UnsafeArchiveError(f"member {info.name!r} appears twice")
    # O_EXCL + O_NOFOLLOW: never write through something that appeared at this name meanwhile.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        remaining = info.size
        while remaining > 0:
            chunk = source.read(min(COPY_CHUNK_BYTES, remaining))
            if not chunk:
                raise UnsafeArchiveError(f"member {info.name!r} is truncated")
            out.write(chunk)
            remaining -= len(chunk)

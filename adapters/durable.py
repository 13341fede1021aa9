"""Files that survive a crash: written to a temporary file, fsynced, then published by name.

`publish_new` never overwrites (a hard link fails when the name exists), so two writers of the
same name leave one complete file; `replace` swaps a file atomically. Either way a reader sees
the old file or the whole new one, never a torn one. Callers fsync the directory
(`sync_directory`) when the new name itself must survive a power cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Published files are readable by their group (an accounting import running as another user in
# the group), never by everyone; secret files (tokens) pass 0o600.
DEFAULT_FILE_MODE = 0o640


def parse_file_mode(value: str | int) -> int:
    """A file mode from configuration ("0640", "640" or 0o640); refuses modes others may write."""
    text = value if isinstance(value, str) else format(value, "o")
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError(f"{value!r} is not an octal file mode such as 0640") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{value!r} is not a file mode between 0000 and 0777")
    if mode & 0o002:
        raise ValueError(f"{value!r} lets every user write the file; use at most 0664")
    if not mode & 0o400:
        raise ValueError(f"{value!r} does not let the owner read the file")
    return mode


def _write_temp(directory: Path, data: bytes, *, prefix: str, mode: int | None, sync: bool = True) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    temp = Path(name)
    try:
        os.fchmod(fd, DEFAULT_FILE_MODE if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return temp


def publish_new(final: Path, data: bytes, *, prefix: str = ".incoming-", mode: int | None = None) -> bool:
    """Create `final` holding `data` unless it exists; False when it already existed.

    Raises OSError when nothing could be published.
    """
    temp = _write_temp(final.parent, data, prefix=prefix, mode=mode)
    try:
        os.link(temp, final)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    return True


def replace(
    path: Path, data: bytes, *, prefix: str | None = None, mode: int | None = None, sync: bool = True
) -> None:
    """Replace `path` with a file holding `data`, atomically, and make the new name durable.

    `sync=False` keeps the replace atomic (never a torn file) but skips both fsyncs: for a copy
    that a crash may lose without harm (an archive whose loss a lookup elsewhere covers)."""
    temp = _write_temp(path.parent, data, prefix=prefix or f".{path.name}.", mode=mode, sync=sync)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    if sync:
        sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so the names created or replaced in it reach the disk."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

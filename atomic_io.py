"""Atomic file writes: nothing half-written is ever left at the target path."""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of ``path`` left by a process that was killed while writing it."""
    for stale in path.parent.glob(f".{path.name}.*"):
        pid = stale.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            stale.unlink(missing_ok=True)


@contextmanager
def atomic_path(path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, rename it to ``path``.

    The temporary name ends in ``suffix`` for writers that look at extensions (".h5", ".png")
    and carries the writer's process id, so that temporaries of a killed writer are removed
    by the next write of the same file. On an exception the temporary file is removed and
    ``path`` is left untouched.
    """
    path = Path(path)
    for folder in (path.parent, *path.parent.parents):  # a file where a folder belongs
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(20, f"cannot write {path}: {folder} is a file, not a "
                                             "folder", str(folder))
            break
    if path.is_dir():
        raise IsADirectoryError(21, f"cannot write {path}: it is a folder; give a file name",
                                str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary shared files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


MAX_STATE_BYTES = 64 << 20  # a state file larger than this is damaged (they hold kilobytes)


def read_json(path, max_bytes: int, limit_name: str):
    """The parsed JSON of ``path`` (UTF-8); ``ValueError`` naming ``limit_name`` if the file
    is larger than ``max_bytes``, so that no file dropped in a folder is read whole."""
    size = Path(path).stat().st_size
    if size > max_bytes:
        raise ValueError(f"{size:,} bytes, above the limit {max_bytes:,} ({limit_name})")
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_json_object(path, what: str = "state file") -> Optional[dict]:
    """The JSON object a state file holds (written with ``atomic_path``); None when there is
    no such file. A damaged one (unreadable, not UTF-8, not JSON, no JSON object) gives a
    warning naming it and None: the caller starts over instead of failing after its work."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        value = read_json(path, MAX_STATE_BYTES, "atomic_io.MAX_STATE_BYTES")
        if not isinstance(value, dict):
            raise ValueError("it holds no JSON object")
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError included
        warnings.warn(f"ignoring the {what} {path}: it cannot be read ({type(err).__name__}: "
                      f"{' '.join(str(err).split())[:120]}); starting over.", stacklevel=2)
        return None
    return value


def save_figure(fig, path) -> Path:
    """Write a matplotlib figure to ``path`` as PNG, atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)

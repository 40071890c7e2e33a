"""What keeps a command from writing where ``--out`` points, said before any work is done.

A command that finds out only when it opens the file reports what the OS says
about the file it opened, which may be a temporary one, and after it has done
the work: these checks name the path the user gave and what is wrong with it.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest of ``path`` and its parents that exists, when it is not a directory."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def file_problem(out: str | PathLike) -> str | None:
    """Why the file ``out`` cannot be written (its directory missing, or it being a
    directory; "it" is ``out``), or None: ``out`` itself need not exist."""
    path = Path(out)
    if path.is_dir():
        return "it is a directory"
    directory = path.parent
    if directory.is_dir():
        return None
    blocker = _file_in_the_way(directory)
    if blocker is not None:
        return f"{blocker} is a file, not a directory"
    return f"the directory {directory} does not exist"


def directory_problem(out: str | PathLike) -> str | None:
    """Why ``out`` cannot be made a directory to write into (it, or one of its parents,
    being a file), or None: a missing ``out`` is made, its parents with it."""
    path = Path(out)
    blocker = _file_in_the_way(path)
    if blocker is None:
        return None
    return f"{'it' if blocker == path else blocker} is a file, not a directory"

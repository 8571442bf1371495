"""Walking a folder into the files a version will hold, refusing what cannot be versioned
(symlinks leading outside it, sockets and pipes, unreadable folders) with every problem named."""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prefect_mlops.core.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class LocalFile:
    """A file found under the root: its manifest path, where it is, and its stat."""

    path: str
    abs_path: str
    size: int
    mtime_ns: int
    inode: int
    mode: int


def _mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644


def scan_tree(root: str | os.PathLike[str], exclude: Sequence[str] = ()) -> list[LocalFile]:
    """Every regular file under ``root`` (a file alone is a tree of one). A symlink to a
    file inside the tree is read as that file; one leading outside, to a folder, or nowhere
    is refused, as are sockets, pipes and devices."""
    from prefect_mlops.datasets.rules import glob_match

    top = Path(root).expanduser()
    if not top.exists():
        raise NotFound(f"Dataset source {str(top)!r} does not exist; pass an existing folder.")
    top = top.resolve()
    if top.is_file():
        st = top.stat()
        return [
            LocalFile(
                unicodedata.normalize("NFC", top.name),
                str(top),
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
                _mode(st.st_mode),
            )
        ]
    prefix = str(top) + os.sep
    files: list[LocalFile] = []
    problems: list[str] = []
    stack = [str(top)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            problems.append(f"{folder}: cannot be listed ({exc.strerror})")
            continue
        for entry in entries:
            rel = entry.path[len(prefix) :].replace(os.sep, "/")
            if exclude and any(glob_match(p, rel) for p in exclude):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    target = os.path.realpath(entry.path)
                    if not target.startswith(prefix):
                        problems.append(
                            f"{rel}: a symlink to {target}, outside {top}; copy the file in "
                            "or exclude it"
                        )
                        continue
                    st = os.stat(entry.path)
                    if stat.S_ISDIR(st.st_mode):
                        problems.append(
                            f"{rel}: a symlink to the folder {target}; folders are versioned "
                            "once, where they are: exclude the link"
                        )
                        continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    problems.append(f"{rel}: not a regular file (a socket, pipe or device)")
                    continue
            except FileNotFoundError:
                problems.append(f"{rel}: a symlink to nothing (or removed while listed)")
                continue
            files.append(
                LocalFile(
                    unicodedata.normalize("NFC", rel),
                    entry.path,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ino,
                    _mode(st.st_mode),
                )
            )
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InvalidInput(
            f"{len(problems)} path(s) under {top} cannot be versioned; nothing was created:\n  "
            f"{shown}{more}"
        )
    return files

"""The content-addressed object store every dataset backend implements.

An object is named by the sha256 hex of its bytes and written once: ``put`` of an object that
is present does nothing. Nothing half-written is ever visible under an object's name (a write
goes to a temporary name and is renamed, or is a single PUT that the server makes atomic).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

ALGO = "sha256"


def object_key(digest: str) -> str:
    """``objects/sha256/ab/cd/abcd...``: where an object lives under a store's root."""
    return f"objects/{ALGO}/{digest[:2]}/{digest[2:4]}/{digest}"


def recipe_key(digest: str) -> str:
    """``recipes/sha256/ab/cd/abcd...``: the chunk list of the large file ``digest``."""
    return f"recipes/{ALGO}/{digest[:2]}/{digest[2:4]}/{digest}"


@dataclass(frozen=True)
class StoredObject:
    """An object as listed by `ObjectStore.list_objects`: digest, size, age."""

    digest: str
    size: int
    modified: float  # epoch seconds


@runtime_checkable
class ObjectStore(Protocol):
    """Where dataset bytes live. ``uri`` names it in messages and version records."""

    uri: str

    def has(self, digest: str) -> bool:
        """True if the object is stored (and, for a store that can, mark it recently used
        so that a concurrent `gc` keeps it)."""
        ...

    def has_many(self, digests: list[str]) -> set[str]:
        """The subset of ``digests`` that is stored."""
        ...

    def put_bytes(self, digest: str, data: bytes | memoryview) -> bool:
        """Store ``data`` under ``digest`` unless present; True if it was written. The caller
        has hashed ``data``; the store does not re-hash."""
        ...

    def put_file(self, digest: str, path: Path, offset: int = 0, length: int | None = None) -> bool:
        """Store the bytes of ``path`` (or the range ``offset``..``offset+length``) under
        ``digest`` unless present; True if written."""
        ...

    def open(self, digest: str) -> IO[bytes]:
        """A stream of the object's bytes (not verified: callers hash what they read).
        Raises `prefect_mlops.core.errors.NotFound` when it is missing."""
        ...

    def local_path(self, digest: str) -> Path | None:
        """The object's file on this machine if it has one (for hardlinks), else None."""
        ...

    def list_objects(self) -> Iterator[StoredObject]:
        """Every stored object."""
        ...

    def delete(self, digest: str) -> None:
        """Remove an object (missing is fine)."""
        ...

    def put_recipe(self, digest: str, data: bytes) -> None:
        """Store the chunk list of the large file whose content digest is ``digest``."""
        ...

    def get_recipe(self, digest: str) -> bytes | None:
        """The chunk list of the large file ``digest``, or None if none is stored."""
        ...

    def list_recipes(self) -> Iterator[StoredObject]:
        """Every stored chunk list (``digest`` is the file's)."""
        ...

    def delete_recipe(self, digest: str) -> None:
        """Remove a chunk list (missing is fine)."""
        ...

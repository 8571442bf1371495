"""The exceptions prefect-mlops raises.

    MlopsError                 root: catch this to handle anything we raise
    ├── InvalidInput           a value passed in breaks a rule (names the value and the rule)
    ├── NotFound               an id or name that does not exist
    ├── AlreadyExists          a name that must be unique is taken
    ├── Conflict               the request contradicts stored state (a param re-logged)
    └── StorageError           the database or artifact storage failed
        └── DatabaseUnavailable  the metadata database cannot be reached

Every message names the offending value and says what to do about it.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Root of every error raised by prefect-mlops."""


class InvalidInput(MlopsError, ValueError):
    """A value passed by the caller breaks a documented rule."""


class NotFound(MlopsError, LookupError):
    """An id or name that does not exist in the store."""


class AlreadyExists(MlopsError):
    """A name that must be unique is already taken."""


class Conflict(MlopsError):
    """The request contradicts what is already stored."""


class StorageError(MlopsError):
    """The metadata database or the artifact storage failed."""


class DatabaseUnavailable(StorageError):
    """The metadata database cannot be reached or opened."""

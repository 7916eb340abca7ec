"""The one exception family of pccompiler.

Every error a user can cause derives from :class:`PCError`, so callers can
catch one class, and the command line prints one line per error instead of a
traceback. Messages name the thing at fault (group, rule, file, row, column).
"""

from __future__ import annotations


class PCError(Exception):
    """Base class of every error pccompiler raises on purpose."""


class BuildError(PCError):
    """A circuit could not be built: bad structure, scopes or shapes."""


class CheckError(PCError):
    """A Model or Layout breaks an invariant of the IR.

    Attributes name the rule, the group (id and name) and the offending values
    so that tools can report them in one line.
    """

    def __init__(self, rule: str, message: str, group: int | None = None,
                 group_name: str = "", values: object = None):
        self.rule = rule
        self.group = group
        self.group_name = group_name
        self.values = values
        where = ""
        if group is not None:
            where = f"group {group}" + (f" ({group_name!r})" if group_name else "") + ": "
        super().__init__(f"[{rule}] {where}{message}")


class LoadError(PCError):
    """A file could not be read: wrong magic, truncated, corrupt, bad checksum,
    unsupported version, or content that contradicts itself."""


class InvalidFileError(LoadError, CheckError):
    """A file that parses but breaks an invariant of the IR.

    It is a LoadError, so a caller that loads a file catches one class for
    every bad file (corrupt bytes or broken content alike), and a CheckError,
    so it carries the checker's `rule`, `group` and `values`. Raised by
    `ir.load(path, check=True)` and by the .pcc reader.
    """


class DataError(PCError):
    """Input data is malformed: wrong shape, dtype, category out of range, NaN,
    an unreadable data file (with the row and column at fault)."""


class PassError(PCError):
    """A compiler pass failed or was asked for something it cannot do."""


class BackendError(PCError):
    """A backend was not found, or cannot do what was asked of it."""


class UnsupportedError(BackendError):
    """A backend does not support a query, distribution or device."""

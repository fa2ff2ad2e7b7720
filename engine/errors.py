"""User-facing errors of the engine.

Every error a user can cause (a wrong path, an unreadable video, a clip with no face, a full
disk) is raised as a :class:`StrandcapError` whose message is one readable line that names the
file and the problem. The CLI prints that line and exits non-zero; the app shows it in a dialog.
"""

from __future__ import annotations


class StrandcapError(Exception):
    """Base class of errors whose message is meant for the user (one line, no traceback)."""

    exit_code = 2


class InputError(StrandcapError):
    """Bad input: a missing file, a file that is not a video, too few frames, no face found."""


class ProjectError(StrandcapError):
    """A project folder that cannot be used (not a project, newer schema, broken manifest)."""


class ConfigError(StrandcapError):
    """An unknown config field, a value of the wrong type, or a value out of range."""


class Cancelled(StrandcapError):
    """The run was cancelled by the user; finished stages stay cached, the running one is dropped."""

    exit_code = 130


class ProjectBusy(ProjectError):
    """Another run (this or another process) holds the project's lock file; nothing was changed."""

    exit_code = 3

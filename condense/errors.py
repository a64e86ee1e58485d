"""User-facing errors: one clear sentence, exit status 2, no traceback."""


class CondenseError(Exception):
    """Bad input or an unrecoverable run condition the user can fix.

    The CLI prints ``str(error)`` as a single sentence on stderr and exits with status 2.
    """

    exit_code = 2


class ImageSizeError(CondenseError):
    """An architecture cannot take images of this size (``--models all`` skips it with a note)."""

"""The one exception type a user should see as a message, never as a traceback."""


class TinyedgeError(Exception):
    """Bad input or an unmet precondition, phrased as: where, what was expected, what was found, what to do."""


class ManifestError(TinyedgeError):
    """A manifest problem, already phrased for the user (file:line: key: what is wrong)."""

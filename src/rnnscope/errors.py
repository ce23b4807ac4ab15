"""The one exception type for a user's mistake: the CLI prints its message, never a traceback."""


class UserError(Exception):
    """A mistake in what the user asked for (a flag, a file, a config value).

    The message names the value, where it came from and what to do; the CLI prints it on one
    line and exits with status 2.
    """

"""The one exception type for problems a user can fix.

Its message is a single sentence that names the offending file or value and
says what to do; the entry points print it without a traceback.
"""


class UserError(ValueError):
    """A configuration or data problem the user caused and can fix."""

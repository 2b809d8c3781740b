"""The one exception type users see: a message that names the problem, no traceback needed."""


class SanitizerError(Exception):
    """Bad input, bad params or a broken contract between stages."""

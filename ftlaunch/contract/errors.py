"""User-facing errors: one line saying what is wrong and how to fix it, exit code 2."""

EXIT_BAD_INPUT = 2


class ConfigError(Exception):
    """Bad input (config, data, environment). The message is the whole story: no traceback."""

"""The errors a user fixes, not a bug in mae_jax: the entry point prints them in one line.

Anything else keeps its traceback, because then the traceback is what helps.
"""


class UserError(Exception):
  """Base: the message names what to change (a config field, a path, a file to fetch)."""


class ConfigError(UserError, ValueError):
  """A config that cannot run; raised before anything compiles."""


class NonFiniteError(UserError, FloatingPointError):
  """Training produced NaN/inf; the message names the step and the last good checkpoint."""


class Preempted(Exception):
  """SIGTERM arrived; a checkpoint of the current step is on disk. Not a failure: exit 0."""


class DatasetUnavailableError(UserError, RuntimeError):
  """A dataset that cannot be read here; the message says which files to put where."""

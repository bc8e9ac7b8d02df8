"""User-facing errors: the CLI prints their message on one line (or one line per problem) and exits 2."""

from __future__ import annotations


class MmevalError(Exception):
    """Bad input or an unusable environment: a message a user can act on, never a traceback."""


class ConfigError(MmevalError):
    """A run config with one or more problems, each reported with its path in the config."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the config:\n{lines}")


class DataError(MmevalError):
    """Benchmark data that is missing, malformed or undecodable."""


class ModelLoadError(MmevalError):
    """A checkpoint that is missing, unreadable or does not fit the architecture."""

"""User-facing errors: the CLI prints their message on one line (or one line per problem) and exits 2."""

from __future__ import annotations


class MmevalError(Exception):
    """Bad input or an unusable environment: a message a user can act on, never a traceback."""

    def lines(self) -> list[str]:
        """The message as the CLI prints it: one self-contained line per problem."""
        return [line.strip() for line in str(self).splitlines() if line.strip()] or [type(self).__name__]


class ConfigError(MmevalError):
    """A run config with one or more problems, each reported with its path in the config."""

    def __init__(self, source: str, problems: list[str], sources: list[str] | None = None):
        """`sources`, when given, names each problem's own source (the config file, or `--set` for a value an
        override put there); by default every problem comes from `source`."""
        self.source = source
        self.problems = problems
        self.sources = sources if sources is not None and len(sources) == len(problems) else [source] * len(problems)
        if len(problems) == 1:
            super().__init__(f"{self.sources[0]}: {problems[0]}")
        else:
            listed = "\n".join(f"  {p}" for p in problems)
            super().__init__(f"{source}: {len(problems)} problems in the config:\n{listed}")

    def lines(self) -> list[str]:
        """`source: path: problem` for each problem, so every line can be read (and grepped) on its own; a line
        break inside a value from the config is shown as \\n."""
        return [f"{where}: {problem}".replace("\r", "\\r").replace("\n", "\\n")
                for where, problem in zip(self.sources, self.problems)]


class DataError(MmevalError):
    """Benchmark data that is missing, malformed or undecodable."""


class ModelLoadError(MmevalError):
    """A checkpoint that is missing, unreadable or does not fit the architecture."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C before anything was computed (e.g. while the model loads): the CLI prints this message as one
    `error:` line and exits 130. A KeyboardInterrupt, so code that stops on Ctrl-C (several-model runs) still
    stops and keeps what finished."""


class TooManyBadInputs(DataError):
    """More unreadable inputs than `data.max_bad_fraction` allows. `dataset` (the report's dataset fields: counts
    and the list of skipped inputs) is kept in the failed benchmark's report entry."""

    def __init__(self, message: str, dataset: dict):
        super().__init__(message)
        self.dataset = dataset

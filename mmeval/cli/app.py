"""The Typer app every command registers on, its shared options, and the one place bad input becomes exit code 2."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from mmeval import __version__
from mmeval.reporting.console import print_error, setup_logging, stderr, stdout

app = typer.Typer(
    name="mmeval",
    help="Evaluate vision-language checkpoints: accuracy, recall@k, caption metrics, latency and bias.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}
log = logging.getLogger("mmeval")

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="Run config (YAML): model, benchmarks, runtime, output, bootstrap. Relative "
                 "paths in it are relative to the current directory. Examples: configs/*.yaml."),
]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a config value, e.g. --set runtime.batch_size=8 "
                 "--set benchmarks[0].data.limit=100 (or benchmarks.0.data.limit=100). Values are parsed as YAML. "
                 "Repeatable."),
]
OutputOption = Annotated[Optional[Path], typer.Option("--output", "-o", help="Report folder (overrides output.dir).")]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write cached model outputs and "
                                             "preprocessed images (same as runtime.cache: false).")]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Reuse the finished batches an interrupted run (Ctrl-C, kill, crash) of the same config left in "
    "the cache folder and compute only the rest; the results equal an uninterrupted run's. Needs the cache "
    "(not --no-cache). Without it, a run starts over and says when such batches exist.")]
TrustOption = Annotated[bool, typer.Option(
    "--trust-checkpoint", help="Allow the checkpoint to run code while it loads: pickles that hold more than "
    "weights (torch.load(weights_only=False)) and transformers folders with their own code (trust_remote_code). "
    "Only for files you trust; without it mmeval reads safetensors and weights-only pickles and runs no checkpoint "
    "code.")]

def _version_callback(value: bool) -> None:
    if value:
        stdout.print(f"mmeval {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and debug logs. Goes before the "
                                        "command: mmeval --debug run ...")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug
    setup_logging(debug)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn MmevalError into `error:` lines (one per problem) and exit code 2, and Ctrl-C (an `Interrupted`
    message, e.g. while the model loads) into one line and exit code 130; a traceback only with --debug."""
    from mmeval.errors import MmevalError

    try:
        yield
    except MmevalError as exc:
        if _state["debug"]:
            stderr.print_exception()
        for line in exc.lines():
            print_error(line)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:  # Ctrl-C outside a benchmark (those are kept in the report): one line, 130
        if _state["debug"]:
            stderr.print_exception()
        print_error(str(exc) or "interrupted")
        raise typer.Exit(130) from None



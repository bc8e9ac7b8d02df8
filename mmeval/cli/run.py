"""Commands that read a run config: run, bench, validate; and score, list."""

from __future__ import annotations

import contextlib
import logging
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from mmeval.cli.checks import DecodeOption, LimitOption, apply_limit, run_prechecks
from mmeval.cli.signals import sigterm_as_interrupt
from mmeval.cli.app import (
    ConfigOption,
    NoCacheOption,
    OutputOption,
    ResumeOption,
    SetOption,
    TrustOption,
    _state,
    _user_errors,
    app,
)
from mmeval.files import check_folder
from mmeval.reporting.console import (
    bench_table,
    make_progress,
    make_status,
    print_error,
    results_table,
    robustness_table,
    stderr,
    stdout,
)

_CONFIG_HELP = """A config names one model (or a list of models, or a checkpoint glob) and one or more benchmarks:

  model:      {type: open_clip, arch: ViT-B-32, checkpoint: checkpoints/vitb32.pt}
  benchmarks:
    - name: coco5k
      task: retrieval
      data: {format: coco, annotations: data/coco/captions.json, images: data/coco/val2014}
  runtime:    {device: auto, precision: fp32, batch_size: 256}
  output:     {dir: reports/}

`mmeval list` shows the model types, tasks and data formats; `mmeval validate` checks a config."""

_RUN_HELP = f"""Evaluate the config's model on each of its benchmarks; write a JSON report, print a results table.

Several models (model: a list, or a checkpoint glob such as runs/epoch_*.pt) are evaluated one after the
other on data read and decoded once: one report per model, plus a leaderboard (.leaderboard.json / .md)
and its table. A model that fails to load or fails a benchmark is recorded and the others still run.

Data-parallel: `torchrun --nproc_per_node N -m mmeval run --config ...` splits every pass across N processes
(one GPU each, NCCL; gloo on CPU) with the same results; rank 0 computes the metrics and writes the report.
Finished batches are saved as a run goes: after a crash, Ctrl-C or SIGTERM, rerun with --resume to compute only
the rest. Every benchmark's annotations and image files are checked before the model is loaded.

Exit codes: 0 all benchmarks ran, 2 bad input (config, data, checkpoint; the report keeps the
benchmarks that finished), 130 interrupted by Ctrl-C, 143 by SIGTERM (finished benchmarks are kept),
1 internal error.
Bad input is reported as one `error:` line per problem; `mmeval --debug run ...` adds the traceback.

{_CONFIG_HELP}"""

_VALIDATE_HELP = f"""Check a config without running it: keys, names, files, annotation files, image files.

Every problem is reported at once, one `error:` line each, with its place in the config (exit code 2);
a valid config prints `ok` (exit code 0). Image files are checked to exist; --decode also decodes them.

{_CONFIG_HELP}"""



@app.command(help=_RUN_HELP)
def run(
    config: ConfigOption,
    overrides: SetOption = None,
    output: OutputOption = None,
    no_cache: NoCacheOption = False,
    trust_checkpoint: TrustOption = False,
    resume: ResumeOption = False,
    limit: LimitOption = None,
) -> None:
    from mmeval.config.file import load_config

    with _user_errors():
        if output is not None:
            check_folder(output, "--output")
        cfg = load_config(config, overrides)
        apply_limit(cfg, limit)
        memo = run_prechecks(cfg, str(config))  # annotations and image files, before the model loads
        from mmeval.engine import distributed  # torch: imported only once the config is known to be valid
        from mmeval.engine.evaluate import run_config

        if output is not None:
            cfg.output.dir = output
        if no_cache:
            cfg.runtime.cache = "off"
        primary = distributed.from_env().is_primary
        if not primary:  # torchrun: rank 0 shows progress and results, the other ranks only warnings and errors
            logging.getLogger("mmeval").setLevel(logging.WARNING)
        try:
            # SIGTERM from here on is handled as Ctrl-C (batches saved, report written), exit code 143
            with (sigterm_as_interrupt() as signals,
                  make_progress() if primary else contextlib.nullcontext() as progress):
                if cfg.is_multi:
                    from mmeval.engine.multi import run_models

                    outcome = run_models(cfg, str(config), progress, trust_checkpoint=trust_checkpoint,
                                         resume=resume, memo=memo)
                else:
                    outcome = run_config(cfg, str(config), progress, trust_checkpoint=trust_checkpoint, resume=resume,
                                         memo=memo)
        finally:
            distributed.shutdown()
    interrupted_code = signals.exit_code()  # 143 after SIGTERM, else 130 (Ctrl-C)
    if not primary:
        raise typer.Exit(interrupted_code if outcome.interrupted else 1 if outcome.internal_error
                         else 2 if outcome.errors else 0)
    if cfg.is_multi:
        _print_multi(outcome)
    else:
        stdout.print(results_table(outcome.report))
        if (robust := robustness_table(outcome.report)) is not None:
            stdout.print(robust)
        if outcome.report_path:
            stderr.print(f"report: {outcome.report_path}", markup=False, highlight=False)
        if outcome.samples_path:
            stderr.print(f"per-sample output: {outcome.samples_path}", markup=False, highlight=False)
        _print_artifacts(outcome.artifacts)
    for line in outcome.errors:
        print_error(line)
    if outcome.internal_error is not None:
        if _state["debug"]:
            raise outcome.internal_error
        print_error(f"internal error: {type(outcome.internal_error).__name__}: {outcome.internal_error} "
                    "(finished benchmarks were saved; rerun with --debug for the traceback)")
        raise typer.Exit(1)
    if outcome.interrupted:
        print_error(f"{signals.what()}; the finished benchmarks were saved in the report")
        _resume_hint(cfg)
        raise typer.Exit(interrupted_code)
    if outcome.errors:
        raise typer.Exit(2)


def _print_artifacts(paths: list[Path], who: str = "") -> None:
    """One line per file a benchmark saved during the run (`captions: reports/x.cap.captions.json`), so every
    file `run` writes is named on the terminal, not only the report."""
    for path in paths:
        kind = path.name.removesuffix(".json").rpartition(".")[2] or "output"
        stderr.print(f"{kind}{who}: {path}", markup=False, highlight=False)


def _resume_hint(cfg) -> None:
    """After Ctrl-C: how to pick up where the run stopped (finished batches are kept in the cache folder)."""
    from mmeval.engine.resume import resume_command

    if cfg.runtime.cache == "off":
        stderr.print("nothing of the interrupted benchmark was kept (runtime.cache is off); with the cache on, "
                     "finished batches are kept and --resume reuses them", markup=False, highlight=False)
        return
    stderr.print(f"finished batches were kept; to resume: {resume_command()}", markup=False, highlight=False)


def _print_multi(outcome) -> None:
    """A several-model run: the leaderboard table, then where each report and the leaderboard files are."""
    from mmeval.reporting.console import leaderboard_table

    stdout.print(leaderboard_table(outcome.leaderboard))
    for run in outcome.runs:
        if run.outcome is not None and run.outcome.report_path:
            stderr.print(f"report ({run.config.name}): {run.outcome.report_path}", markup=False, highlight=False)
        if run.outcome is not None and run.outcome.samples_path:
            stderr.print(f"per-sample output ({run.config.name}): {run.outcome.samples_path}", markup=False,
                         highlight=False)
        if run.outcome is not None:
            _print_artifacts(run.outcome.artifacts, f" ({run.config.name})")
    stderr.print(f"leaderboard: {outcome.leaderboard_path} (and {outcome.markdown_path.name})", markup=False,
                 highlight=False)


def _int_list(text: str, option: str) -> list[int]:
    from mmeval.errors import MmevalError

    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MmevalError(f"{option}: expected comma-separated integers like 1,8,32, got {text!r}") from None
    if not values or min(values) < 1:
        raise MmevalError(f"{option}: expected positive integers like 1,8,32, got {text!r}")
    return values


@app.command(help="""Time the config's model on synthetic inputs at its own input size: no dataset is read.

For each capability of the model (image / text encoder, captioning, answering), each precision and each
batch size, runtime.warmup_batches warm-up calls then --iterations timed calls (CUDA-synchronised).
Prints a table and writes a JSON report in the same schema as `mmeval run` (benchmark "bench"), whose
throughput and p50 metrics can be compared and gated like any other. The config's benchmarks are not run;
captioning and answering use the first such benchmark's generation settings.""")
def bench(
    config: ConfigOption,
    overrides: SetOption = None,
    output: OutputOption = None,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", "-b", help="Comma-separated batch sizes.")] = "1,8,32",
    precisions: Annotated[Optional[str], typer.Option(
        "--precisions", "-p", help="Comma-separated precisions among fp32, bf16, fp16 (default: runtime.precision).")] = None,
    iterations: Annotated[int, typer.Option("--iterations", "-n", min=1, help="Timed calls per configuration.")] = 10,
    trust_checkpoint: TrustOption = False,
) -> None:
    from mmeval.config.file import load_config
    from mmeval.errors import MmevalError

    with _user_errors():
        if output is not None:
            check_folder(output, "--output")
        cfg = load_config(config, overrides)
        sizes = _int_list(batch_sizes, "--batch-sizes")
        chosen = [p.strip() for p in precisions.split(",")] if precisions else None
        if chosen is not None and (not chosen or set(chosen) - {"fp32", "bf16", "fp16"}):
            raise MmevalError(f"--precisions: expected some of fp32, bf16, fp16, got {precisions!r}")
        from mmeval.engine import distributed  # torch: imported only once the input is known to be valid
        from mmeval.engine.evaluate import bench_config

        if distributed.from_env().world_size > 1:
            raise MmevalError("mmeval bench times one process on one device; run it without torchrun")

        if output is not None:
            cfg.output.dir = output
        with make_status() as progress:
            task = progress.add_task("bench", total=None)
            outcome = bench_config(cfg, sizes, chosen, iterations, str(config),
                                   lambda what: progress.update(task, description=f"bench: {what}"),
                                   trust_checkpoint=trust_checkpoint)  # fmt: skip
    stdout.print(bench_table(outcome.report))
    if outcome.report_path:
        stderr.print(f"report: {outcome.report_path}", markup=False, highlight=False)
    for line in outcome.errors:  # the report could not be written
        print_error(line)
    if outcome.errors:
        raise typer.Exit(2)


@app.command(help=_VALIDATE_HELP)
def validate(
    config: ConfigOption,
    overrides: SetOption = None,
    load_model: Annotated[bool, typer.Option("--load-model", help="Also load the checkpoint to check it fits the "
                                             "architecture (imports the model's framework; slower).")] = False,
    trust_checkpoint: TrustOption = False,
    limit: LimitOption = None,
    decode: DecodeOption = False,
) -> None:
    from mmeval.config.file import load_config
    from mmeval.errors import ConfigError, MmevalError

    with _user_errors():
        if os.environ.get("WORLD_SIZE", "1") != "1":  # checking a config needs no process group, nor N copies
            raise MmevalError("mmeval validate checks a config in one process; run it without torchrun")
        cfg = load_config(config, overrides)
        apply_limit(cfg, limit)
        problems = _data_problems(cfg, decode)
        if cfg.runtime.device.startswith("cuda"):
            from mmeval.engine.runtime import resolve_runtime

            try:
                resolve_runtime(cfg.runtime)
            except MmevalError as exc:
                problems.append(str(exc))
        if load_model:
            problems += _load_problems(cfg, trust_checkpoint)
        elif cfg.is_multi:
            for n, model in enumerate(cfg.models):
                stderr.print(f"model[{n}]: {model.name} ({model.type}) {model.checkpoint or ''}", markup=False,
                             highlight=False)
        if problems:
            raise ConfigError(str(config), problems)
    stdout.print(f"[green]ok[/]: {escape(str(config))} is valid")


def _load_problems(cfg, trust_checkpoint: bool = False) -> list[str]:
    """Load each model of the config in turn (one at a time): what does not load, one line each."""
    from mmeval.engine.evaluate import load_model
    from mmeval.errors import MmevalError

    problems = []
    for n, model_cfg in enumerate(cfg.models):
        where = f"model[{n}] ({model_cfg.name}): " if cfg.is_multi else ""
        try:
            info = load_model(model_cfg, trust_checkpoint).info
            stderr.print(f"{where or 'model: '}{info.name} ({info.adapter}), {info.n_parameters:,} parameters",
                         markup=False, highlight=False)
        except MmevalError as exc:
            problems.extend(where + line for line in exc.lines())
    own = {b.model.model_dump_json(): (n, b.model) for n, b in reversed(list(enumerate(cfg.benchmarks))) if b.model}
    for n, model_cfg in sorted(own.values(), key=lambda item: item[0]):  # benchmarks' own models, each entry once
        try:
            info = load_model(model_cfg, trust_checkpoint, f"benchmarks[{n}].model").info
            stderr.print(f"benchmarks[{n}].model: {info.name} ({info.adapter}), {info.n_parameters:,} parameters",
                         markup=False, highlight=False)
        except MmevalError as exc:
            problems.extend(exc.lines())
    return problems


def _data_problems(cfg, decode: bool = False) -> list[str]:
    """Load each benchmark's annotations as its task reads them and check its image files exist (checks.py)."""
    from mmeval.cli.checks import data_problems

    return data_problems(cfg, decode)


class Dedup(str, Enum):
    first = "first"


class Tokenizer(str, Enum):
    auto = "auto"
    ptb = "ptb"
    python = "python"


@app.command()
def score(
    annotations: Annotated[Path, typer.Option("--annotations", "-a", help="COCO captions annotation JSON (or MSR-VTT-style "
                                              "video captions; VQA: the VQAv2 annotations; --mc: the multiple-choice "
                                              "questions file).")],
    results: Annotated[Path, typer.Option("--results", "-r", help="COCO results JSON: [{image_id, caption}] (or "
                                          "[{video_id, caption}]; VQA, --mc: [{question_id, answer}]).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report folder.")] = Path("reports"),
    dedup: Annotated[Optional[Dedup], typer.Option(
        "--dedup", help="Several captions for one image id: keep the first (default: refuse, naming the ids).")] = None,
    metrics: Annotated[str, typer.Option(
        help="Comma-separated subset of Bleu,METEOR,ROUGE_L,CIDEr,SPICE.")] = "Bleu,METEOR,ROUGE_L,CIDEr,SPICE",
    tokenizer: Annotated[Tokenizer, typer.Option(
        help="ptb: pycocoevalcap's PTB tokenizer (Java); python: the fallback; auto: ptb when Java is found.")]
    = Tokenizer.auto,
    spice_jars: Annotated[Optional[Path], typer.Option(
        help="Folder with the Stanford CoreNLP 3.6.0 jars SPICE needs (without it SPICE is skipped).")] = None,
    skip_unknown: Annotated[bool, typer.Option(
        "--skip-unknown", help="Score only the result image ids found in the annotations (count the others) "
        "instead of refusing the results file.")] = False,
    gender_bias: Annotated[bool, typer.Option(
        "--gender-bias", help="Add the caption gender bias of Hendricks et al. 2018 (each image's gender from its "
        "reference captions, the paper's word lists) and every metric per gender.")] = False,
    leakage_seeds: Annotated[int, typer.Option(
        help="With --gender-bias: seeds of the LIC leakage classifier (0: no LIC).", min=0)] = 0,
    images: Annotated[Optional[Path], typer.Option(
        "--images", "-i", help="The annotations' image folder: recorded in the report so that `mmeval report "
        "--html` shows the best and worst captioned images (without it: captions and scores only).")] = None,
    questions: Annotated[Optional[Path], typer.Option(
        "--questions", help="VQA: the VQAv2 questions JSON; scores a VQA results file with official accuracy.")] = None,
    answer_normalisation: Annotated[str, typer.Option(
        help="VQA: eval_server, gtvision_2021 or normalise_both (see the README).")] = "eval_server",
    mc: Annotated[bool, typer.Option("--mc", help="Score a multiple-choice results file against the questions "
                                     "file given as --annotations.")] = False,
) -> None:
    """Score an existing results file with no model: captions as the official COCO demo does, VQA answers
    (--questions) as the official VQA evaluation does, multiple-choice answers (--mc).

    Captions: only the images present in the results are evaluated; result ids missing from the annotations
    are an error. VQA / multiple choice: every question needs one answer. Writes a report in the same format
    as `run`, with per-sample scores next to it.
    """
    from mmeval.metrics.caption.scores import METRICS
    from mmeval.tasks.coco_captions.score import score_results

    if questions is not None or mc:
        _score_answers(annotations, results, output, questions, answer_normalisation, mc)
        return
    with _user_errors():
        chosen = tuple(m.strip() for m in metrics.split(",") if m.strip())
        unknown = [m for m in chosen if m not in METRICS]
        if unknown or not chosen:
            from mmeval.errors import MmevalError

            raise MmevalError(f"--metrics: unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                              f"choose from {', '.join(METRICS)}")
        for path, what in ((annotations, "--annotations"), (results, "--results")):
            if not path.is_file():
                from mmeval.errors import MmevalError

                raise MmevalError(f"{what}: file not found: {path}")
        check_folder(output, "--output")
        if images is not None and not images.is_dir():
            from mmeval.errors import MmevalError

            raise MmevalError(f"--images: expected a folder of images, got "
                              f"{'a file' if images.exists() else 'a path that does not exist'}: {images}")
        bias = None
        if gender_bias:
            from mmeval.config.bias import BiasConfig

            bias = BiasConfig(attributes=["gender"], reference_attribute="gender", caption_attribute="gender",
                              leakage_seeds=leakage_seeds)
        outcome = score_results(annotations, results, output, dedup.value if dedup else None, chosen,
                                tokenizer.value, spice_jars, bias=bias, skip_unknown=skip_unknown,
                                images=images)
    stdout.print(results_table(outcome.report))
    for bench in outcome.report["benchmarks"].values():
        skipped = bench.get("dataset", {}).get("n_skipped_unknown_ids")
        if skipped:
            stderr.print(f"--skip-unknown: left out {skipped} result image id(s) not in {annotations}; scored "
                         f"{bench['dataset']['n_scored_images']}", markup=False, highlight=False)
        if gender_bias:
            from mmeval.reporting.bias_summary import caption_bias_summary

            summary = caption_bias_summary(bench, "gender")
            if summary:
                stdout.print(summary, markup=False, highlight=False, soft_wrap=True)
    stderr.print(f"report: {outcome.report_path}", markup=False, highlight=False)
    if outcome.samples_path:
        stderr.print(f"per-image scores: {outcome.samples_path}", markup=False, highlight=False)


def _score_answers(annotations: Path, results: Path, output: Path, questions: Path | None, normalisation: str,
                   mc: bool) -> None:
    """`score` of a question-answering results file (VQA with --questions, multiple choice with --mc)."""
    with _user_errors():
        from mmeval.errors import MmevalError

        if questions is not None and mc:
            raise MmevalError("--questions (VQA) and --mc (multiple choice): choose one")
        for path, what in ((annotations, "--annotations"), (results, "--results"), (questions, "--questions")):
            if path is not None and not path.is_file():
                raise MmevalError(f"{what}: file not found: {path}")
        check_folder(output, "--output")
        if mc:
            from mmeval.tasks.multiple_choice.score import score_mc_results

            outcome = score_mc_results(annotations, results, output)
        else:
            from mmeval.tasks.vqa.score import score_vqa_results

            outcome = score_vqa_results(questions, annotations, results, output, normalisation)
    stdout.print(results_table(outcome.report))
    stderr.print(f"report: {outcome.report_path}", markup=False, highlight=False)


@app.command("list")
def list_components() -> None:
    """List model adapters, tasks, data formats and metrics."""
    from rich.table import Table

    from mmeval.config.checks import known_specs
    from mmeval.registry import DATA_FORMATS, MODELS

    specs = known_specs()
    rows = (("model adapters (model.type)", "capabilities", [(n, ", ".join(e.capabilities), e.help) for n, e in MODELS.items()]),
            ("tasks (benchmarks[].task)", "needs", [(s.name, s.needs, s.summary + _source(s)) for s in specs]),
            ("data formats (benchmarks[].data.format)", "", [(n, e.help) for n, e in DATA_FORMATS.items()]))
    for title, column, entries in rows:
        out = Table(title=title, title_justify="left")
        out.add_column("name", style="bold", min_width=max(len(e[0]) for e in entries))  # names are never cut
        if column:
            out.add_column(column)
        out.add_column("description")
        for entry in entries:
            out.add_row(*entry)
        stdout.print(out)
    for spec in specs:
        out = Table(title=f"metrics (task {spec.name})", title_justify="left")
        for column in ("name", "better", "description"):
            out.add_column(column)
        for name, (better, text) in spec.metrics.items():
            out.add_row(name, "higher" if better else "lower", text)
        stdout.print(out)


def _source(spec) -> str:
    return "" if spec.source == "mmeval" else f" (from {spec.source})"

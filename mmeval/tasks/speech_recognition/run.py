"""Speech recognition: a transcript per clip, then corpus WER / CER under each named normaliser, and RTFx.

Transcripts are written next to the report at once (`transcripts` artifact), so a failure while scoring never
loses them. References and transcripts go through the same normaliser; the first of `normalizers` gives the
headline `wer` / `cer`. RTFx is seconds of decoded audio over the model time of the transcription pass (data
loading and decoding excluded), measured only when the model actually ran (not from the output cache).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import numpy as np

from mmeval.data.speech_formats import SpeechData
from mmeval.engine.audio_passes import AudioPass, transcribe
from mmeval.errors import DataError, MmevalError
from mmeval.metrics.stats.bootstrap import Clusters, add_intervals
from mmeval.metrics.text_norm import get_normaliser
from mmeval.metrics.wer import rtfx, summarise, utterance_errors
from mmeval.models.base import GenerationSettings
from mmeval.registry import DATA_FORMATS, resolve
from mmeval.tasks.base import BenchmarkResult, RunContext
from mmeval.tasks.speech_recognition import TASK
from mmeval.tasks.speech_recognition.samples import speaker_labels

log = logging.getLogger(__name__)
EMPTY_REFERENCES = ("an utterance whose normalised reference is empty has no per-utterance rate; its transcript's "
                    "words (characters) count as insertions in the corpus rate, adding nothing to N")


def load_speech(cfg) -> SpeechData:
    data = resolve("data format", cfg.format, DATA_FORMATS)(cfg)
    if not isinstance(data, SpeechData):
        raise MmevalError(f"data.format '{cfg.format}' holds no transcripts")
    return data


def load_data(bench) -> tuple[Any, str]:
    """The clips and transcripts as `run` reads them, and a one-line summary (`mmeval validate`)."""
    data = load_speech(bench.data)
    return data, f"{len(data.ids)} clips with transcripts"


def dataset_block(data: SpeechData, clips: AudioPass, seconds: float) -> dict[str, Any]:
    """The report's dataset block: sizes, skipped clips with the reason, source, digest of annotations + audio."""
    digest = hashlib.sha256(data.annotation_digest.encode())
    for index in sorted(clips.digests):
        digest.update(bytes.fromhex(clips.digests[index]))
    return {"n_texts": len(clips.ok_indices), "n_clips": len(clips.ok_indices),
            "n_skipped_clips": len(clips.bad),
            "skipped_clips": [{"id": data.ids[i], "reason": reason} for i, reason in clips.bad],
            "audio_seconds": seconds, "source": data.source, "sha256": digest.hexdigest(),
            "decoded_from_cache": clips.decoded_from_cache, "decoder": clips.decoder}  # fmt: skip


def _ratio_statistic(errors: dict[str, np.ndarray], lengths: dict[str, np.ndarray]):
    """Bootstrap statistic: each corpus rate recomputed on the resampled utterances (sum of errors / sum of N)."""

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        return {name: (counts @ errors[name]) / (counts @ lengths[name]) for name in errors}

    return statistic


def by_speaker(rows: list[dict[str, Any]], errors: np.ndarray, lengths: np.ndarray) -> dict[str, dict[str, Any]]:
    """Corpus WER (headline normaliser) of each speaker's utterances (speakers as the data names them; for the
    spoken shapes set, the espeak-ng voice)."""
    groups: dict[str, list[int]] = {}
    for row_number, row in enumerate(rows):
        if row.get("speaker") is not None:
            groups.setdefault(str(row["speaker"]), []).append(row_number)
    return {speaker: {"n": len(members), "wer": float(errors[members].sum() / lengths[members].sum())
                      if lengths[members].sum() else None} for speaker, members in sorted(groups.items())}  # fmt: skip


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Transcribe every readable clip, save the transcripts, then score them under each normaliser."""
    started = time.perf_counter()
    normalisers = [get_normaliser(name) for name in bench.normalizers]
    settings = GenerationSettings(**bench.generation.model_dump())
    data = ctx.load_data(load_speech, bench.data)
    load_s = time.perf_counter() - started

    progress = ctx.progress.add_task(f"{bench.name}: transcripts", total=len(data.ids))
    outputs, clips = transcribe(model, data.audio, ctx.runtime, bench.audio, settings, bench.data.on_bad_input,
                                lambda n: ctx.progress.advance(progress, n), ctx.perturbation)  # fmt: skip
    if not ctx.passes_done():
        return None
    if not clips.ok_indices:
        raise DataError(f"{data.source}: no clip could be decoded ({len(clips.bad)} skipped)")
    hypotheses = [text for text, _ in outputs]
    references = [data.texts[i] for i in clips.ok_indices]
    seconds = float(sum(s for _, s in outputs))
    extra: dict[str, Any] = {"empty_references": EMPTY_REFERENCES,
                             "normalizers": {n.name: n.version for n in normalisers}}  # fmt: skip
    rows = [{"id": data.ids[i], "speaker": data.speakers[i], "seconds": s, "reference": data.texts[i],
             "hypothesis": text} for i, (text, s) in zip(clips.ok_indices, outputs)]  # fmt: skip
    if ctx.save_artifact is not None:
        extra["transcripts_file"] = ctx.save_artifact("transcripts", rows).name

    metric_start = time.perf_counter()
    metrics: dict[str, dict[str, Any]] = {}
    errors_block: dict[str, Any] = {}
    sums: dict[str, np.ndarray] = {}
    lengths: dict[str, np.ndarray] = {}
    metric_names = ["wer"]
    for position, normaliser in enumerate(normalisers):
        refs, hyps = [normaliser(t) for t in references], [normaliser(t) for t in hypotheses]
        suffix = "" if position == 0 else f"_{normaliser.name}"
        for unit, name in (("word", "wer"), ("char", "cer")):
            counts = utterance_errors(refs, hyps, unit)
            summary = summarise(counts)
            metrics[name + suffix] = {"value": summary["rate"], "higher_is_better": False}
            per = summary.pop("per_utterance")
            errors_block[f"{name}{suffix}"] = {**summary, "normaliser": normaliser.describe()}
            sums[name + suffix] = np.array([c.errors for c in counts], dtype=np.float64)
            lengths[name + suffix] = np.array([c.reference_length for c in counts], dtype=np.float64)
            if position == 0:
                for row, rate, c, ref, hyp in zip(rows, per, counts, refs, hyps):
                    row[name] = rate
                    row[f"{name}_counts"] = {"S": c.substitutions, "D": c.deletions, "I": c.insertions,
                                             "N": c.reference_length}  # fmt: skip
                    if unit == "word":
                        row.update(reference_normalised=ref, hypothesis_normalised=hyp)
    extra["by_speaker"] = by_speaker(rows, sums[metric_names[0]], lengths[metric_names[0]])
    speed = None if clips.timer.cached else rtfx(seconds, clips.timer.model_s)
    if speed is not None:
        metrics["rtfx"] = {"value": speed, "higher_is_better": True}
    else:
        extra["rtfx_note"] = "not measured: the transcripts came from the output cache"
    # speakers as the paired test's unit (samples.py), when the data names enough of them for a bootstrap
    speakers = speaker_labels(rows)
    clusters = None if speakers is None else Clusters.from_labels(speakers, name="speakers")
    block = add_intervals(metrics, (len(rows),), _ratio_statistic(sums, lengths), ctx.bootstrap, "utterances",
                          clusters)  # fmt: skip
    if block is not None:
        extra["bootstrap"] = block
    extra["errors"] = errors_block
    if any(summary["empty_references"] for summary in errors_block.values()):
        log.warning("%s: some normalised references are empty (%s)", bench.name, EMPTY_REFERENCES)
    timings = {"load_data_s": load_s, **clips.timer.as_dict("generate"),
               "metrics_s": time.perf_counter() - metric_start, "total_s": time.perf_counter() - started}
    return BenchmarkResult(TASK.name, dataset_block(data, clips, seconds), metrics, timings, {"utterances": rows},
                           extra, timers={"generate": clips.timer})  # fmt: skip

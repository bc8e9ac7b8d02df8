"""`mmeval score`: score an existing COCO results file against COCO caption annotations, with no model.

Exactly what the official COCO caption evaluation demo does: the annotations are read with pycocotools,
only the images present in the results are evaluated, and each needs exactly one caption (the official
scorers assert on it). The report has the same format as `mmeval run`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO

from mmeval.config.bias import BiasConfig
from mmeval.config.run import BootstrapConfig
from mmeval.data.coco import read_json
from mmeval.engine.evaluate import RunOutcome, write_outputs
from mmeval.errors import DataError
from mmeval.ids import natural_sorted, show_ids
from mmeval.metrics.bias import groups_from_references
from mmeval.metrics.caption.scores import METRICS, score_captions
from mmeval.metrics.stats.bootstrap import add_intervals
from mmeval.metrics.stats.bootstrap_metrics import caption_statistic
from mmeval.models.base import ModelInfo, sha256_of_path
from mmeval.reporting.report import new_report
from mmeval.tasks.coco_captions import TASK
from mmeval.tasks.bias_block import caption_subset_scorer, captioning_bias

TOKENIZERS = {"auto": "ptb", "ptb": "ptb", "python": "python"}


def read_annotations(path: Path) -> COCO:
    """COCO captions annotations through pycocotools, with the shape checked first (one clear error)."""
    raw = read_json(path)
    if isinstance(raw, dict) and isinstance(raw.get("videos"), list) and isinstance(raw.get("sentences"), list):
        raw = _video_as_coco(raw)  # MSR-VTT-style video captions: videos are the "images"
    if not isinstance(raw, dict) or not isinstance(raw.get("annotations"), list) or not isinstance(raw.get("images"), list):
        raise DataError(f"{path}: expected COCO captions annotations: an object with 'images' and 'annotations' lists")
    for n, image in enumerate(raw["images"]):
        if not isinstance(image, dict) or "id" not in image:
            raise DataError(f"{path}: images[{n}] needs an 'id'")
    for n, ann in enumerate(raw["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
            raise DataError(f"{path}: annotations[{n}] needs an 'image_id' and a string 'caption'")
        ann.setdefault("id", f"annotations[{n}]")  # pycocotools indexes by it; captions files may omit it
    coco = COCO()
    coco.dataset = raw
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        coco.createIndex()
    return coco


def read_results(path: Path, dedup: str | None) -> dict[Any, str]:
    """COCO results `[{"image_id", "caption"}]` -> {image_id: caption}; repeated ids are an error unless dedup."""
    raw = read_json(path)
    if isinstance(raw, list):  # video caption results ([{"video_id", "caption"}], video_captioning's file)
        raw = [{**row, "image_id": row["video_id"]} if isinstance(row, dict) and "image_id" not in row
               and "video_id" in row else row for row in raw]
    if not isinstance(raw, list):
        raise DataError(f"{path}: expected a COCO results list [{{\"image_id\": ..., \"caption\": ...}}], "
                        f"got a JSON {type(raw).__name__}")
    for n, row in enumerate(raw):
        if not isinstance(row, dict) or "image_id" not in row or not isinstance(row.get("caption"), str):
            raise DataError(f"{path}: results[{n}] needs an 'image_id' and a string 'caption'")
    counts = Counter(row["image_id"] for row in raw)
    repeated = natural_sorted(i for i, c in counts.items() if c > 1)
    if repeated and dedup != "first":
        shown = show_ids(repeated)
        raise DataError(f"{path}: {len(repeated)} image id(s) have several captions ({shown}); the official scorers "
                        "need exactly one per image; pass --dedup first to keep the first caption of each")
    results: dict[Any, str] = {}
    for row in raw:
        results.setdefault(row["image_id"], row["caption"])
    return results


def score_results(annotations: Path, results: Path, output: Path, dedup: str | None = None,
                  metrics: tuple[str, ...] = METRICS, tokenizer: str = "auto", spice_jars: Path | None = None,
                  name: str | None = None, bias: BiasConfig | None = None,
                  skip_unknown: bool = False, bootstrap: BootstrapConfig | None = None,
                  images: Path | None = None) -> RunOutcome:
    """Score `results` against `annotations` and write a report (and per-image scores) to `output`.

    With `bias` (its `reference_attribute` derived from the reference captions, as `--gender-bias` sets up),
    the benchmark also gets the captioning `bias` block of `mmeval run`. `skip_unknown` scores only the result
    ids found in the annotations (e.g. results for all of val2014 against a subset) and counts the others.
    Every metric gets a bootstrap 95% interval over images, as in `mmeval run` (`bootstrap`, default 1000).
    `images` (--images), the annotations' image folder, is recorded as the benchmark's data config, as `run`
    records it, so the HTML report's gallery can show the images."""
    bootstrap = bootstrap or BootstrapConfig()
    started = time.perf_counter()
    coco = read_annotations(annotations)
    predictions = read_results(results, dedup)
    unknown = natural_sorted(i for i in predictions if i not in coco.imgs)
    if unknown and not skip_unknown:
        shown = show_ids(unknown)
        raise DataError(f"{results}: {len(unknown)} result image id(s) are not in {annotations} ({shown}); "
                        "pass --skip-unknown to score only the annotated ones")
    for image_id in unknown:
        del predictions[image_id]
    references = {i: [a["caption"] for a in coco.imgToAnns.get(i, [])] for i in predictions}
    without = [i for i, refs in references.items() if not refs]
    if without:
        raise DataError(f"{annotations}: {len(without)} result image id(s) have no reference caption "
                        f"({show_ids(without)})")
    load_s = time.perf_counter() - started

    scores = score_captions(references, predictions, metrics=metrics, spice_jars=spice_jars,
                            tokenizer=TOKENIZERS[tokenizer])
    reported = {k: {"value": v, "higher_is_better": True} for k, v in scores.scores.items()}
    block = add_intervals(reported, (len(scores.image_ids),), caption_statistic(scores), bootstrap, "images")
    bench_name = name or results.stem
    info = ModelInfo("results-file", results.stem, str(results), sha256_of_path(results), 0)
    config = {"command": "score", "annotations": str(annotations), "results": str(results), "dedup": dedup,
              "metrics": list(metrics), "tokenizer": tokenizer, "skip_unknown": skip_unknown,
              "bootstrap": bootstrap.model_dump(), "spice_jars": str(spice_jars) if spice_jars else None}
    if images is not None:  # the data block `run` writes: the HTML gallery rebuilds the images from it
        data = {"format": "coco", "annotations": str(annotations.resolve()), "images": str(images.resolve())}
        config["benchmarks"] = [{"name": bench_name, "task": TASK.name, "data": data}]
    report = new_report(config, info, None, None)
    digest = hashlib.sha256(sha256_of_path(annotations).encode() + sha256_of_path(results).encode()).hexdigest()
    report["benchmarks"][bench_name] = {
        "status": "complete",
        "task": TASK.name,
        "dataset": {"n_images": len(predictions), "n_texts": sum(map(len, references.values())),
                    "n_scored_images": len(predictions), "n_empty_predictions": scores.n_empty_predictions,
                    "n_skipped_unknown_ids": len(unknown),
                    "source": f"coco:{annotations}", "sha256": digest},
        "metrics": reported,
        "timings": {"load_data_s": load_s, "metrics_s": time.perf_counter() - started - load_s},
        "predictions_file": str(results),
        "tokenizer": scores.tokenizer,
        "skipped_metrics": scores.skipped,
        "warnings": scores.warnings,
    }
    if block is not None:
        report["benchmarks"][bench_name]["bootstrap"] = block
    if bias is not None:
        report["config"]["bias"] = bias.model_dump(mode="json")
        report["benchmarks"][bench_name]["bias"] = _bias_block(bias, references, predictions, scores)
    per_image = [{"image_id": i, "caption": predictions[i],
                  **{m: float(scores.per_image[m][n]) for m in scores.per_image}}
                 for n, i in enumerate(scores.image_ids)]
    outcome = RunOutcome(report)
    stem = f"{bench_name}-scored-{time.strftime('%Y%m%d-%H%M%S')}"
    write_outputs(report, {bench_name: {"captions": per_image}}, output, stem, True, outcome)
    return outcome


def _bias_block(bias: BiasConfig, references: dict[Any, list[str]], predictions: dict[Any, str],
                scores) -> dict[str, Any]:
    """The captioning bias block for the scored images; the reference attribute comes from their references."""
    ids = scores.image_ids
    groups = groups_from_references([references[i] for i in ids], bias.words())
    attributes = {i: {bias.reference_attribute: g} for i, g in zip(ids, groups)}
    return captioning_bias(bias, ids, attributes, [predictions[i] for i in ids], references,
                           caption_subset_scorer(scores))


def _video_as_coco(raw: dict[str, Any]) -> dict[str, Any]:
    """MSR-VTT-style `{"videos": [{"video_id"}], "sentences": [{"video_id", "caption"}]}` as COCO captions."""
    images = [{"id": v["video_id"]} if isinstance(v, dict) and "video_id" in v else v for v in raw["videos"]]
    annotations = [{**s, "image_id": s["video_id"]} if isinstance(s, dict) and "video_id" in s else s
                   for s in raw["sentences"]]
    return {"images": images, "annotations": annotations}

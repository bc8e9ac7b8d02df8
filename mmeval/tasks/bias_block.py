"""The report's `bias` block: every headline metric sliced by per-image attributes, plus each task's own bias.

A benchmark with a `bias` section gets, per configured attribute (`gender`, `skin_tone`; on shapes:
`background`, `n_shapes`, `dominant_color`, `n_colors`):

- `sliced`: every headline metric recomputed on each group's samples (corpus-level metrics such as CIDEr and
  recall@k from scratch, not averaged), with group sizes, the worst group, the max-min gap and the min/max
  ratio; samples without the attribute are excluded and counted (`metrics.bias.subgroup_metrics`);
- retrieval: Skew@k, MaxSkew@k, MinSkew@k, NDKL@k and Bias@k of the configured text queries over the image
  gallery (`bias.queries`, against a uniform or the gallery's own distribution);
- captioning: the caption group bias of Hendricks et al. (2018) when `bias.caption_attribute` is set (group
  words per value, default the paper's man / woman lists), and leakage in captions (LIC, Hirota et al. 2022)
  with `bias.leakage_seeds`; `bias.reference_attribute` derives an attribute (e.g. gender) from each image's
  reference captions, as the paper labelled COCO;
- zero-shot classification: per-group accuracy and fairlearn's parity metrics, one-vs-rest and for
  `bias.harmful_classes`; directional bias amplification attribute -> task (Wang & Russakovsky 2021) always,
  Zhao et al. (2017) bias amplification with `bias.training_counts`.

Attributes come from the data (shapes, or loaders that keep them) or from `bias.attributes_file`: a CSV with
an `image_id` column or a JSON object {image_id: {attribute: value}}; ids are matched as strings.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.errors import DataError
from mmeval.metrics import bias as bias_metrics
from mmeval.metrics.stats.bootstrap_metrics import meteor_from_sums, meteor_stats_matrix

_MISSING = ("", "na", "n/a", "none", "null", "nan")


def load_attribute_file(path: Path) -> dict[str, dict[str, Any]]:
    """image id (as a string) -> {attribute: value}; empty / "NA" cells are missing values."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"bias.attributes_file: cannot read {path} ({exc})") from None
    if Path(path).suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"bias.attributes_file: {path} is not valid JSON ({exc})") from None
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise DataError(f"bias.attributes_file: {path} must hold {{image_id: {{attribute: value}}}}")
        return {str(k): v for k, v in raw.items()}
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or "image_id" not in rows[0]:
        raise DataError(f"bias.attributes_file: {path} needs a header row with an 'image_id' column")
    return {row["image_id"]: {k: (None if (v or "").strip().lower() in _MISSING else v)
                              for k, v in row.items() if k != "image_id"} for row in rows}  # fmt: skip


def attribute_columns(image_ids: list[Any], data_attributes: dict[Any, dict[str, Any]], cfg) -> dict[str, list]:
    """For each configured attribute, its value for each image of `image_ids` (None where missing)."""
    source = load_attribute_file(cfg.attributes_file) if cfg.attributes_file else None
    where = str(cfg.attributes_file) if source is not None else "the data"
    columns = {}
    for name in cfg.attributes:
        if source is not None and name != cfg.reference_attribute:
            values = [source.get(str(i), {}).get(name) for i in image_ids]
        else:
            values = [data_attributes.get(i, {}).get(name) for i in image_ids]
        if all(v is None for v in values):
            known = sorted({k for attrs in (source or data_attributes).values() for k in attrs})
            raise DataError(f"bias.attributes: no image has attribute '{name}' in {where} "
                            f"(known: {', '.join(known) or 'none'})")  # fmt: skip
        columns[name] = values
    return columns


def check_attributes(cfg, data, attributes: dict | None = None) -> None:
    """Fail before any model work if a configured attribute is on no image (`cfg` None: no bias section);
    `attributes` replaces the data's own (e.g. with groups derived from the references)."""
    if cfg is not None:
        attribute_columns(list(data.image_ids), data.attributes if attributes is None else attributes, cfg)


def with_reference_groups(cfg, data) -> dict[Any, dict[str, Any]]:
    """The data's attributes plus `cfg.reference_attribute` of each image, derived from its reference
    captions (`bias_metrics.groups_from_references`); the data's attributes unchanged when not configured."""
    if cfg is None or cfg.reference_attribute is None:
        return data.attributes
    references: list[list[str]] = [[] for _ in data.image_ids]
    for text, owner in zip(data.texts, data.text_image_index):
        references[owner].append(text)
    groups = bias_metrics.groups_from_references(references, cfg.words())
    return {i: {**data.attributes.get(i, {}), cfg.reference_attribute: g} for i, g in zip(data.image_ids, groups)}


def _block(columns: dict[str, list], per_attribute: Callable[[str, list], dict[str, Any]]) -> dict[str, Any]:
    return {"attributes": {name: per_attribute(name, values) for name, values in columns.items()}}


def retrieval_bias(cfg, image_ids: list[Any], attributes: dict, ranks, owner: list[int], has_caption: np.ndarray,
                   recall_k: list[int], query_scores: np.ndarray | None) -> dict[str, Any]:  # fmt: skip
    """Recall sliced by the attribute of the query's image (t2i) or of the image (i2t); skew of the queries."""
    from mmeval.metrics.retrieval import higher_is_better

    columns = attribute_columns(image_ids, attributes, cfg)
    captioned = np.flatnonzero(has_caption)

    def per_attribute(name: str, values: list) -> dict[str, Any]:
        def t2i(rows: np.ndarray) -> dict[str, float]:
            return _recalls("t2i", ranks, rows, recall_k)

        def i2t(rows: np.ndarray) -> dict[str, float]:
            return _recalls("i2t", ranks, rows, recall_k)

        sliced = bias_metrics.subgroup_metrics([values[o] for o in owner], t2i, higher_is_better)
        sliced.update(bias_metrics.subgroup_metrics([values[i] for i in captioned], i2t, higher_is_better))
        entry: dict[str, Any] = {"sliced": sliced}
        if query_scores is not None:
            target = None if cfg.target == "uniform" else _gallery_distribution(values)
            entry["queries"] = {f"@{k}": bias_metrics.retrieval_bias(query_scores, values, k, target=target)
                                for k in cfg.k}  # fmt: skip
        return entry

    block = _block(columns, per_attribute)
    if query_scores is not None:
        block["queries"] = list(cfg.queries)
    return block


def _recalls(direction: str, all_ranks, rows: np.ndarray, ks: list[int]) -> dict[str, float]:
    ranks = getattr(all_ranks, direction)[rows]
    out = {f"{direction}_R@{k}": float(np.mean(all_ranks.hit(direction, k)[rows])) for k in ks}  # tie policy's hits
    out[f"{direction}_median_rank"] = float(np.median(ranks)) if len(ranks) else float("nan")
    return out


def _gallery_distribution(values: list) -> dict[str, float]:
    keys = [bias_metrics.label_key(v) for v in values]
    keys = [k for k in keys if k is not None]
    return {k: keys.count(k) / len(keys) for k in sorted(set(keys))}


def captioning_bias(cfg, image_ids: list[Any], attributes: dict, captions: list[str],
                    references: dict[Any, list[str]], score: Callable[[list[Any]], dict[str, float]]) -> dict:
    """Caption metrics recomputed per group (`score(ids)` scores a subset of images), the Hendricks et al.
    caption group bias for `caption_attribute`, and LIC leakage when asked."""
    columns = attribute_columns(image_ids, attributes, cfg)

    def per_attribute(name: str, values: list) -> dict[str, Any]:
        sliced = bias_metrics.subgroup_metrics(values, lambda rows: score([image_ids[r] for r in rows]), True)
        entry: dict[str, Any] = {"sliced": sliced}
        if name == cfg.caption_attribute:
            entry.update(_caption_groups(cfg, values, captions, references, image_ids))
        return entry

    return _block(columns, per_attribute)


def caption_subset_scorer(scores) -> Callable[[list[Any]], dict[str, float]]:
    """Caption metrics of a subset of the scored images (`scores`: their CaptionScores), from the statistics
    already computed: BLEU, ROUGE_L and CIDEr (idf of the subset) by `CaptionScores.subset`, METEOR by the jar's
    aggregate formula on summed statistics; each equal to re-scoring the subset, without tokenizing again or
    starting a JVM per group. SPICE is left out (no per-image statistics)."""
    position = {image_id: n for n, image_id in enumerate(scores.image_ids)}
    meteor = meteor_stats_matrix(scores.meteor.stats) if scores.meteor is not None else None

    def score(ids: list[Any]) -> dict[str, float]:
        rows = np.array([position[i] for i in ids], dtype=np.int64)
        out = scores.subset(rows)
        if meteor is not None:
            out["METEOR"] = float(meteor_from_sums(meteor[rows], np.ones((1, len(rows))))[0])
        return out

    return score


def _caption_groups(cfg, values: list, captions: list[str], references: dict, image_ids: list) -> dict[str, Any]:
    words = cfg.words()
    (group_a, words_a), (group_b, words_b) = words.items()
    truth = [{group_a: "man", group_b: "woman"}.get(bias_metrics.label_key(v) or "", None) for v in values]
    hendricks = bias_metrics.caption_gender_bias(truth, captions, man_words=words_a, woman_words=words_b)
    renamed = {group_a if k == "man" else group_b if k == "woman" else k: v for k, v in hendricks.items()}
    out: dict[str, Any] = {"caption_groups": {**renamed, "groups": [group_a, group_b],
                                              "words": {group_a: words_a, group_b: words_b}}}  # fmt: skip
    if cfg.leakage_seeds:
        human = [references[i][0] if references.get(i) else "" for i in image_ids]
        out["leakage"] = bias_metrics.leakage_in_captions(captions, human, values, [*words_a, *words_b],
                                                          seeds=tuple(range(cfg.leakage_seeds)))  # fmt: skip
    return out


def classification_bias(cfg, image_ids: list[Any], attributes: dict, labels: np.ndarray, predictions: np.ndarray,
                        classes: list[str], score: Callable[[np.ndarray], dict[str, float]]) -> dict[str, Any]:
    """Headline metrics per group (`score(rows)`), accuracy and fairlearn-style parity per group."""
    from mmeval.tasks.zeroshot_classification import TASK

    higher_is_better = TASK.higher_is_better

    unknown = sorted(set(cfg.harmful_classes) - set(classes))
    if unknown:
        raise DataError(f"bias.harmful_classes: {', '.join(unknown)} not among the classes ({', '.join(classes)})")
    columns = attribute_columns(image_ids, attributes, cfg)
    names = np.array(classes, dtype=object)

    def per_attribute(name: str, values: list) -> dict[str, Any]:
        fairness = bias_metrics.classification_fairness(
            names[labels], names[predictions], values, classes=classes,
            harmful_classes=cfg.harmful_classes or None,
        )  # fmt: skip
        entry = {"sliced": bias_metrics.subgroup_metrics(values, score, higher_is_better), "fairness": fairness,
                 "directional_bias_amplification": _directional(values, labels, predictions, len(classes))}
        if name in training:
            entry["bias_amplification"] = _amplification(training[name], values, names[predictions], classes)
        return entry

    training = _training_counts(cfg.training_counts) if cfg.training_counts else {}
    return _block(columns, per_attribute)


def _training_counts(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"bias.training_counts: cannot read {path} ({exc})") from None
    if not isinstance(raw, dict) or not all(isinstance(c, dict) and all(isinstance(g, dict) for g in c.values())
                                            for c in raw.values()):  # fmt: skip
        raise DataError(f"bias.training_counts: {path} must hold {{attribute: {{class: {{group: count}}}}}}")
    return raw


def _amplification(counts: dict[str, dict[str, float]], values: list, predicted: np.ndarray,
                   classes: list[str]) -> dict[str, Any]:  # fmt: skip
    """Zhao et al. 2017 over the classes with training counts: training vs predicted (class, group) counts."""
    objects = [c for c in classes if c in counts]
    groups = sorted({str(g) for c in objects for g in counts[c]})
    keys = [bias_metrics.label_key(v) for v in values]
    train = np.array([[float(counts[c].get(g, 0)) for g in groups] for c in objects])
    pred = np.array([[float(np.sum((predicted == c) & np.array([k == g for k in keys]))) for g in groups]
                     for c in objects])  # fmt: skip
    return {**bias_metrics.bias_amplification(train, pred), "classes": objects, "groups": groups}


def _directional(values: list, labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Wang & Russakovsky 2021 attribute -> task amplification on the test set (images with the attribute):
    does knowing the group push the predicted class further than the true labels do? (The task -> attribute
    direction needs a prediction of the attribute, which a zero-shot class prediction is not.)"""
    keys = [bias_metrics.label_key(v) for v in values]
    rows = np.array([k is not None for k in keys], dtype=bool)
    groups = sorted({k for k in keys if k is not None})
    attribute = np.array([[k == g for g in groups] for k in keys], dtype=bool).reshape(len(keys), len(groups))
    eye = np.eye(n_classes, dtype=bool)
    value = bias_metrics.directional_bias_amplification(attribute[rows], eye[labels[rows]], eye[predictions[rows]],
                                                        "A->T")  # fmt: skip
    return {"A->T": value, "groups": groups, "n_images": int(rows.sum())}


def sliced_only(cfg, sample_image_ids: list[Any], attributes: dict, score: Callable[[np.ndarray], dict[str, float]],
                higher_is_better: bool = True) -> dict[str, Any]:  # fmt: skip
    """Any task: the headline metrics recomputed per group of the sample's image (e.g. VQA per question)."""
    columns = attribute_columns(sample_image_ids, attributes, cfg)
    return _block(columns, lambda name, values: {
        "sliced": bias_metrics.subgroup_metrics(values, score, higher_is_better)})

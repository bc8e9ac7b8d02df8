"""Scoring spoken VQA, the same for both modes: per-question rows, accuracy spoken and as text, the loss due to
speech, the questions' WER when there are transcripts, and bootstrap intervals over questions."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmeval.metrics.stats.bootstrap import add_intervals, mean
from mmeval.metrics.text_norm import get_normaliser
from mmeval.metrics.vqa import vqa_accuracy
from mmeval.metrics.wer import summarise, utterance_errors
from mmeval.tasks.spoken_vqa import TASK


def score(data: Any, scored: list[int], spoken: dict[int, str], text: dict[int, str] | None,
          transcript: dict[int, str] | None, normalizer: str, bootstrap: Any) -> tuple[dict, list[dict], dict]:  # fmt: skip
    """(metrics, per-question rows, extra) for the questions `scored` (positions in `data.questions.questions`):
    `spoken[n]` the answer to the spoken question, `text[n]` to its reference text (None: not asked), and
    `transcript[n]` the question as heard (None: no transcript, so no WER)."""
    questions = data.questions.questions
    normalise = get_normaliser(normalizer)
    errors = (utterance_errors([normalise(questions[n].text) for n in scored],
                               [normalise(transcript[n]) for n in scored]) if transcript is not None else None)  # fmt: skip
    rows = []
    for k, n in enumerate(scored):
        q = questions[n]
        row: dict[str, Any] = {"question_id": q.question_id, "image_id": data.image_ids[q.image], "question": q.text}
        if transcript is not None:
            row["transcript"] = transcript[n]
        row["answer_spoken"] = spoken[n]
        row["spoken_accuracy"] = vqa_accuracy(spoken[n], q.answers)
        if text is not None:
            row.update(answer_text=text[n], text_accuracy=vqa_accuracy(text[n], q.answers))
        if errors is not None:
            row.update(word_errors=errors[k].errors, reference_words=errors[k].reference_length)
        rows.append(row)
    columns = {"spoken_accuracy": np.array([r["spoken_accuracy"] for r in rows])}
    if text is not None:
        columns["text_accuracy"] = np.array([r["text_accuracy"] for r in rows])
        columns["speech_loss"] = columns["text_accuracy"] - columns["spoken_accuracy"]
    values = {name: float(column.mean()) for name, column in columns.items()}
    extra: dict[str, Any] = {}
    word = None
    if errors is not None:
        wer = summarise(errors)
        values["question_wer"] = wer["rate"]
        extra.update(normalizer=normalise.describe(), wer={k: v for k, v in wer.items() if k != "per_utterance"})
        word = np.array([[r["word_errors"], r["reference_words"]] for r in rows], dtype=np.float64)
    metrics = {name: {"value": value, "higher_is_better": TASK.higher_is_better(name)} for name, value in values.items()}
    names = list(columns)
    per_item = np.stack([columns[name] for name in names], axis=1)

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        means = mean(counts, per_item)
        out = {name: means[:, i] for i, name in enumerate(names)}
        if word is not None:
            sums = counts @ word
            out["question_wer"] = sums[:, 0] / np.maximum(sums[:, 1], 1)
        return out

    block = add_intervals(metrics, (len(rows),), statistic, bootstrap, "questions")
    if block is not None:
        extra["bootstrap"] = block
    return metrics, rows, extra

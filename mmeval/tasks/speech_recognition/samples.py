"""Per-utterance values of speech recognition for paired tests (compare, gate), matched by utterance id.

Per-utterance WER / CER are compared by their mean (the corpus rate weights utterances by length, so a paired
test on per-utterance rates answers a slightly different question; the report says which). When the data names
every utterance's speaker, the test pairs by speaker (a speaker's utterances flip together: a randomisation
test stays exact with any number of speakers, it only loses power, and the report gives the smallest p-value
possible); otherwise by utterance. The report's intervals resample speakers only with at least `MIN_SPEAKERS`
of them (run.py): a percentile bootstrap over a handful of clusters is unreliable (the few-clusters problem;
Cameron, Gelbach & Miller 2008), so with fewer they resample utterances, and the bootstrap block says which.
"""

from __future__ import annotations

from mmeval.reporting.sample_values import ClusterKey, PairedValues, no_test, rows_of, single

SPEAKER = ClusterKey("speaker", "speakers")
MIN_SPEAKERS = 10


def speaker_labels(rows: list[dict]) -> list | None:
    """Each row's speaker for the bootstrap's clusters when every row names one and there are at least
    `MIN_SPEAKERS`; else None (the intervals resample utterances)."""
    labels = [row.get("speaker") for row in rows]
    if any(label is None for label in labels) or len(set(labels)) < MIN_SPEAKERS:
        return None
    return labels


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    ra, rb = rows_of(a, "utterances"), rows_of(b, "utterances")
    if ra is None or rb is None:
        return no_test("no per-utterance rows")
    if metric in ("wer", "cer"):
        return single(ra, rb, lambda r: r["id"], lambda r: r.get(metric), keep=lambda r: r.get(metric) is not None,
                      cluster=SPEAKER)
    return no_test("no per-sample values for this metric")

"""Per-utterance values of speech recognition for paired tests (compare, gate), matched by utterance id.

Per-utterance WER / CER are compared by their mean (the corpus rate weights utterances by length, so a paired
test on per-utterance rates answers a slightly different question; the report says which). When the data names
every utterance's speaker, the test pairs by speaker (a speaker's utterances flip and are drawn together);
otherwise by utterance.
"""

from __future__ import annotations

from mmeval.reporting.sample_values import ClusterKey, PairedValues, no_test, rows_of, single

SPEAKER = ClusterKey("speaker", "speakers")


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    ra, rb = rows_of(a, "utterances"), rows_of(b, "utterances")
    if ra is None or rb is None:
        return no_test("no per-utterance rows")
    if metric in ("wer", "cer"):
        return single(ra, rb, lambda r: r["id"], lambda r: r.get(metric), keep=lambda r: r.get(metric) is not None,
                      cluster=SPEAKER)
    return no_test("no per-sample values for this metric")

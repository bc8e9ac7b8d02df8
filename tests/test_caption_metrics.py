"""Caption metrics against the independent reference, pycocoevalcap 1.2, scorer by scorer on the same tokenized input.

(`COCOEvalCap.evaluate()` is never called: it runs SPICE, which downloads Stanford CoreNLP.)
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from mmeval.metrics.caption import java_scorers
from mmeval.metrics.caption import scores as captioning
from mmeval.metrics.caption import tokenize as caption_tokenize
from mmeval.metrics.caption.bleu import bleu_from_stats, bleu_stats
from mmeval.metrics.caption.cider import cider_from_stats, cider_per_image
from mmeval.metrics.caption.java_scorers import CORENLP_JARS, MeteorScorer, java_major_version, meteor_jar, spice_score
from mmeval.metrics.caption.rouge import lcs_length, rouge_stats
from mmeval.metrics.caption.scores import HIGHER_IS_BETTER, score_captions, score_tokenized
from mmeval.metrics.caption.tokenize import JavaToolError, find_java

EXACT = 1e-9  # BLEU, ROUGE_L, CIDEr
METEOR_TOL = 1e-6
N_IMAGES = 800  # BLEU / ROUGE_L / CIDEr parity
N_METEOR = 300
NATIVE = ("Bleu", "ROUGE_L", "CIDEr")


@pytest.fixture(scope="module")
def java():
    require(find_java() is not None and meteor_jar() is not None, "java with pycocoevalcap's METEOR jar")


@pytest.fixture(scope="module")
def meteors(java):
    """(pycocoevalcap's Meteor, our MeteorScorer), started together: each JVM takes seconds to load."""
    from pycocoevalcap.meteor.meteor import Meteor

    ours = MeteorScorer()
    theirs = Meteor()
    yield theirs, ours
    ours.close()
    theirs.meteor_p.kill()  # pycocoevalcap's Meteor never closes its pipes
    theirs.meteor_p.wait()
    theirs.meteor_p.stdout.close()
    theirs.meteor_p.stderr.close()


@pytest.fixture(scope="module")
def ptb(java):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    return lambda captions: tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


@pytest.fixture(scope="module")
def coco_refs(shared_data) -> dict[int, list[str]]:
    ann = json.loads((shared_data / "coco" / "captions_val2014_subset.json").read_text())
    refs: dict[int, list[str]] = {}
    for a in ann["annotations"]:
        refs.setdefault(a["image_id"], []).append(a["caption"])
    return refs


@pytest.fixture(scope="module")
def subset_task(coco_refs, ptb):
    """N_IMAGES random images, each predicted with a caption of another image (seeded); tokenized by pycocoevalcap."""
    rng = random.Random(0)
    ids = rng.sample(sorted(coco_refs), N_IMAGES)
    preds = {i: rng.choice(coco_refs[rng.choice([j for j in ids[:50] if j != i])]) for i in ids}
    gts = ptb({i: coco_refs[i] for i in ids})
    res = ptb({i: [preds[i]] for i in ids})
    return gts, res


@pytest.fixture(scope="module")
def fakecap_task(shared_data, coco_refs):
    results = json.loads((shared_data / "coco" / "captions_val2014_fakecap_results.json").read_text())
    preds = {r["image_id"]: r["caption"] for r in results if r["image_id"] in coco_refs}
    assert len(preds) == 245
    return {i: coco_refs[i] for i in preds}, preds


def reference_scores(gts: dict, res: dict) -> dict[str, tuple[float, np.ndarray]]:
    """pycocoevalcap's Bleu(4), Rouge() and Cider(), called one by one."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, per = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f"Bleu_{k + 1}": (bleu[k], np.array(per[k])) for k in range(4)}
    out["ROUGE_L"] = Rouge().compute_score(gts, res)
    out["CIDEr"] = Cider().compute_score(gts, res)
    return {name: (float(score), np.asarray(per)) for name, (score, per) in out.items()}


def ours_tokenized(gts: dict, res: dict, metrics=NATIVE, **kwargs):
    ids = list(gts)
    return score_tokenized(ids, [gts[i] for i in ids], [res[i][0] for i in ids], metrics, **kwargs)


def assert_same(ours, theirs: dict, tol: float = EXACT) -> None:
    for name, (score, per_image) in theirs.items():
        assert ours.scores[name] == pytest.approx(score, abs=tol, rel=0), name
        np.testing.assert_allclose(ours.per_image[name], per_image, rtol=0, atol=tol, err_msg=name)


def test_native_metrics_equal_pycocoevalcap_on_coco_subset(subset_task):
    gts, res = subset_task
    ours = ours_tokenized(gts, res)
    assert_same(ours, reference_scores(gts, res))
    assert 0 < ours.scores["CIDEr"] < ours.scores["Bleu_1"] < 1  # other images' captions: poor but not zero
    assert ours.tokenizer == "pre-tokenized" and not ours.warnings


@pytest.mark.slow
def test_meteor_equals_pycocoevalcap_on_coco_subset(subset_task, meteors):
    theirs_meteor, ours_meteor = meteors
    gts, res = subset_task
    ids = list(gts)[:N_METEOR]
    gts, res = {i: gts[i] for i in ids}, {i: res[i] for i in ids}
    score, per_image = theirs_meteor.compute_score(gts, res)
    ours = ours_tokenized(gts, res, metrics=("METEOR",), meteor_scorer=ours_meteor)
    assert_same(ours, {"METEOR": (score, np.array(per_image))}, METEOR_TOL)
    # the corpus METEOR pools statistics: recomputing it from a subset of them equals a run on that subset
    sub_score, sub_per_image = theirs_meteor.compute_score({i: gts[i] for i in ids[:40]}, {i: res[i] for i in ids[:40]})
    sub = ours_meteor.score_from_stats(ours.meteor.stats[:40])
    assert sub.score == pytest.approx(sub_score, abs=METEOR_TOL)
    np.testing.assert_allclose(sub.per_image, sub_per_image, atol=METEOR_TOL)


def test_score_captions_on_fakecap_equals_pycocoevalcap(fakecap_task, ptb, meteors, tmp_path):
    theirs_meteor, ours_meteor = meteors
    refs, preds = fakecap_task
    gts, res = ptb(refs), ptb({i: [c] for i, c in preds.items()})
    theirs = reference_scores(gts, res)
    meteor, meteor_per_image = theirs_meteor.compute_score(gts, res)
    theirs["METEOR"] = (meteor, np.array(meteor_per_image))
    ours = score_captions(refs, preds, spice_jars=tmp_path, meteor_scorer=ours_meteor)
    assert_same(ours, {k: v for k, v in theirs.items() if k != "METEOR"})
    assert_same(ours, {"METEOR": theirs["METEOR"]}, METEOR_TOL)
    assert ours.tokenizer == "ptb-java"
    assert ours.image_ids == list(refs)
    assert "SPICE" not in ours.scores and "stanford-corenlp-3.6.0.jar" in ours.skipped["SPICE"]
    assert all(ours.higher_is_better[name] for name in ours.scores) and set(ours.scores) <= set(HIGHER_IS_BETTER)


def test_subset_statistics_equal_pycocoevalcap_run_on_the_subset(subset_task):
    gts, res = subset_task
    ids = list(gts)
    ours = ours_tokenized(gts, res)
    picked = np.random.default_rng(1).choice(len(ids), 120, replace=False)
    sub_ids = [ids[i] for i in picked]
    theirs = reference_scores({i: gts[i] for i in sub_ids}, {i: res[i] for i in sub_ids})
    subset = ours.subset(picked)
    for name, (score, _) in theirs.items():
        assert subset[name] == pytest.approx(score, abs=EXACT, rel=0), name
    np.testing.assert_allclose(cider_per_image(ours.cider, picked), theirs["CIDEr"][1], atol=EXACT)
    # "corpus" idf averages the per-image scores of the full set instead: a different number
    assert ours.subset(picked, cider_idf="corpus")["CIDEr"] == pytest.approx(np.mean(ours.cider.per_image[picked]))


def test_repeated_indices_act_like_copies_of_the_images(subset_task):
    """A bootstrap resample (repeated indices) scores like pycocoevalcap on a corpus holding image copies."""
    gts, res = subset_task
    ids = list(gts)[:60]
    ours = ours_tokenized({i: gts[i] for i in ids}, {i: res[i] for i in ids})
    resample = np.random.default_rng(2).integers(0, len(ids), len(ids))
    copies = [(ids[i], n) for n, i in enumerate(resample)]
    theirs = reference_scores({k: gts[k[0]] for k in copies}, {k: res[k[0]] for k in copies})
    subset = ours.subset(resample)
    for name, (score, _) in theirs.items():
        assert subset[name] == pytest.approx(score, abs=EXACT, rel=0), name


def test_bleu_hand_worked_examples():
    # exact match: every ratio is (m + 1e-15) / (m + 1e-9), i.e. 1 up to pycocoevalcap's constants
    assert bleu_from_stats(bleu_stats(["a man riding a horse"], [["a man riding a horse"]])) == pytest.approx([1] * 4)
    # "the cat sat on the mat" vs "the cat is on the mat": clipped matches 5/6 unigrams ("the" x2, cat, on, mat),
    # 3/5 bigrams (the cat, on the, the mat), 1/4 trigrams (on the mat), 0/3 4-grams; equal lengths, no penalty.
    # Bleu_2 = sqrt(5/6 * 3/5) = sqrt(1/2); Bleu_3 = (5/6 * 3/5 * 1/4)^(1/3) = 1/2; Bleu_4 ~ (1/8 * 1e-15/3)^(1/4).
    stats = bleu_stats(["the cat sat on the mat"], [["the cat is on the mat", "a dog"]])
    b1, b2, b3, b4 = bleu_from_stats(stats)
    assert (b1, b2, b3) == pytest.approx((5 / 6, math.sqrt(0.5), 0.5), abs=1e-8)
    assert b4 == pytest.approx((1 / 8 * 1e-15 / 3) ** 0.25, rel=1e-6)
    assert stats.reflen.tolist() == [6]  # the closest reference length, not the shortest (2)
    # "the cat" against a 6-word reference: all n-grams match, brevity penalty exp(1 - 6/2)
    assert bleu_from_stats(bleu_stats(["the cat"], [["the cat sat on the mat"]]))[0] == pytest.approx(math.exp(-2))


def test_rouge_hand_worked_example_and_lcs_against_pycocoevalcap():
    from pycocoevalcap.rouge.rouge import my_lcs

    # LCS("a b c d", "a c d e f") = 3 (a c d): P = 3/4, R = 3/5, F = (1 + 1.44) P R / (R + 1.44 P) = 1.098 / 1.68
    assert rouge_stats(["a b c d"], [["a c d e f"]]).per_image[0] == pytest.approx(1.098 / 1.68)
    rng = random.Random(3)
    for _ in range(200):
        a = [rng.choice("abcdef") for _ in range(rng.randint(0, 150))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 80))]
        assert lcs_length(a, b) == my_lcs(a, b)


def test_long_and_irregular_captions_take_the_exact_path():
    from pycocoevalcap.rouge.rouge import Rouge

    long = " ".join(f"w{i % 30}" for i in range(90))  # over 64 tokens
    gts = {1: [long, "w1 w2"], 2: ["a b c", "a  b"], 3: ["x y\tz"], 4: ["p q r s"]}
    res = {1: [" ".join(f"w{i % 25}" for i in range(70))], 2: ["b  c"], 3: ["x y z"], 4: ["q s"]}
    theirs = reference_scores(gts, res)
    assert_same(ours_tokenized(gts, res), theirs)
    assert theirs["ROUGE_L"][1].tolist() == Rouge().compute_score(gts, res)[1].tolist()


def test_empty_predictions_are_counted_and_scored_like_pycocoevalcap(subset_task, ptb):
    gts, _ = subset_task
    ids = list(gts)[:30]
    refs = {i: gts[i] for i in ids}
    preds = {i: refs[i][0] for i in ids}
    preds[ids[0]], preds[ids[1]], preds[ids[2]] = "", "   ", "..."
    ours = score_captions(refs, preds, metrics=NATIVE)
    theirs = reference_scores(ptb(refs), ptb({i: [c] for i, c in preds.items()}))
    assert_same(ours, theirs)
    assert ours.n_empty_predictions == 3
    assert any("3 of 30 predictions are empty" in w for w in ours.warnings), ours.warnings
    assert [ours.per_image[m][0] for m in ("Bleu_4", "ROUGE_L", "CIDEr")] == [0, 0, 0]


def test_empty_reference_makes_an_empty_prediction_a_perfect_rouge_l():
    # pycocoevalcap splits on " " for ROUGE_L: "" is one empty token, and it matches an empty reference
    gts = {1: ["a dog", ""], 2: ["a cat on a mat"]}
    res = {1: [""], 2: ["a cat"]}
    theirs = reference_scores(gts, res)
    assert theirs["ROUGE_L"][1][0] == 1.0
    assert_same(ours_tokenized(gts, res), theirs)


def test_single_image_cider_is_zero_and_warned_about():
    gts, res = {7: ["a man riding a horse", "a horse and its rider"]}, {7: ["a man riding a horse"]}
    theirs = reference_scores(gts, res)
    assert theirs["CIDEr"][0] == 0.0  # idf = log(1) - log(1) = 0 for every n-gram
    ours = ours_tokenized(gts, res)
    assert_same(ours, theirs)
    assert any("CIDEr over 1 images" in w for w in ours.warnings)
    assert cider_from_stats(ours.cider) == 0.0


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="same images"):
        score_captions({1: ["a"]}, {2: "a"}, metrics=NATIVE, tokenizer="none")
    with pytest.raises(ValueError, match="did you mean 'CIDEr'"):
        score_captions({1: ["a"]}, {1: "a"}, metrics=("Cider",))
    with pytest.raises(ValueError, match="one predicted caption"):
        score_captions({1: ["a"]}, {1: ["a", "b"]}, metrics=NATIVE, tokenizer="none")
    ours = score_captions({1: ["a b"], 2: ["c d"]}, {1: ["a b"], 2: "c"}, metrics=NATIVE, tokenizer="python")
    assert ours.tokenizer == "python-fallback" and ours.scores["Bleu_1"] > 0


def test_without_java_the_native_metrics_still_work(monkeypatch):
    for module in (caption_tokenize, captioning, java_scorers):
        monkeypatch.setattr(module, "find_java", lambda: None)
    ours = score_captions({1: ["A dog runs."], 2: ["A cat sleeps."]}, {1: "a dog runs", 2: "a cat"})
    assert ours.tokenizer == "python-fallback"
    assert any("Python fallback" in w for w in ours.warnings)
    assert set(ours.scores) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"}
    assert set(ours.skipped) == {"METEOR", "SPICE"} and all("java" in why for why in ours.skipped.values())
    assert ours.per_image["Bleu_1"][0] == pytest.approx(1.0)


def test_java_failures_raise_instead_of_hanging(java, tmp_path):
    bogus = tmp_path / "bogus.jar"
    bogus.write_text("not a jar")
    with pytest.raises(JavaToolError, match="Invalid or corrupt jarfile"):
        MeteorScorer(jar=bogus).score(["a"], [["a"]])
    silent = tmp_path / "silent-java"
    silent.write_text("#!/bin/sh\ncat > /dev/null\n")  # reads everything, never answers
    silent.chmod(0o755)
    with MeteorScorer(java=str(silent), timeout_s=1) as meteor:
        with pytest.raises(JavaToolError, match="no answer within 1 s"):
            meteor.score(["a"], [["a"]])
        with pytest.raises(JavaToolError, match="closed"):  # a failed scorer is stopped, not reused half-way
            meteor.score(["a"], [["a"]])
    fake = tmp_path / "corenlp"
    fake.mkdir()
    assert "never downloaded" in spice_score(["a"], [["a"]], corenlp_dir=fake).skipped
    for name in CORENLP_JARS:
        (fake / name).write_bytes(b"")
    if java_major_version(find_java()) >= 15:  # SPICE 1.0 needs Nashorn, gone from Java 15+
        assert "Nashorn" in spice_score(["a"], [["a"]], corenlp_dir=fake).skipped
        (fake / "nashorn-core-15.4.jar").write_bytes(b"")
    with pytest.raises(JavaToolError, match="SPICE \\(java\\) exited with status"):
        spice_score(["a dog"], [["a dog runs"]], corenlp_dir=Path(fake))

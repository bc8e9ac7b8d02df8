"""`mmeval compare`, the paired test and the report loader.

The paired test is checked against independent references: the exact McNemar test (scipy's binomial test on
the discordant pairs, which is what a sign-flip test of 0/1 outcomes is), scipy's exact permutation test for
means and medians, and the analytic standard error for the bootstrap interval. The goldens in tests/golden
were written by the code of each report schema version (1.0.0 at commit 6d3c8cd, 1.1.0 at 641626f) from
tests/golden/golden.yaml; they must keep loading as the schema grows.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from mmeval.cli import app
from mmeval.errors import MmevalError
from mmeval.metrics.stats.paired import paired_test
from mmeval.reporting.report import SCHEMA_VERSION
from mmeval.reporting.report_io import HISTORY, load_report, load_samples
from mmeval.reporting.report_io import SCHEMA_VERSION as READ_VERSION
from mmeval.reporting.sample_values import paired_values

GOLDEN = Path(__file__).parent / "golden"
GOLDENS = {version: GOLDEN / f"golden-v{version}.json" for version in HISTORY}
LATEST = GOLDENS[HISTORY[-1]]


def cli(*args, env=None):
    return CliRunner(env=env).invoke(app, [str(a) for a in args])


# --- synthetic runs -------------------------------------------------------------------------------------


def seeded_ranks(n: int, recall: float, seed: int, queries_seed: int = 0) -> np.ndarray:
    """Ranks of `n` queries for a model with top-1 recall about `recall`. Each query has a difficulty (fixed by
    `queries_seed`: the benchmark), and a training seed adds its own noise (sd 0.1) to how well the model does
    on each query, so two seeds of one model agree on most queries and differ on some, as real runs do."""
    difficulty = np.random.default_rng(queries_seed).uniform(size=n)
    rng = np.random.default_rng(1000 + seed)
    hit = difficulty < recall + rng.normal(0.0, 0.1, size=n)
    return np.where(hit, 1, rng.integers(2, 30, size=n))


def retrieval_report(tmp_path: Path, name: str, t2i: np.ndarray, i2t: np.ndarray, *, per_sample: bool = True,
                     sha256: str | None = None, environment: dict | None = None, p95: float | None = None) -> Path:
    """A current-schema report (the golden's shape) whose retrieval benchmark has these ranks, its metrics
    computed here with numpy; the golden's zero-shot benchmark (with its bias block) is kept."""
    report = json.loads(LATEST.read_text())
    samples = json.loads((GOLDEN / report["per_sample_file"]).read_text())
    bench = copy.deepcopy(report["benchmarks"]["retr"])
    metrics = {}
    for direction, ranks in (("t2i", t2i), ("i2t", i2t)):
        for k in (1, 5, 10):
            metrics[f"{direction}_R@{k}"] = {"value": float(np.mean(ranks <= k)), "higher_is_better": True}
        metrics[f"{direction}_mean_rank"] = {"value": float(np.mean(ranks)), "higher_is_better": False}
        metrics[f"{direction}_median_rank"] = {"value": float(np.median(ranks)), "higher_is_better": False}
    metrics["rsum"] = {"value": sum(v["value"] for k, v in metrics.items() if "_R@" in k), "higher_is_better": True}
    bench["metrics"] = metrics
    bench["dataset"].update(n_images=len(i2t), n_texts=len(t2i))
    if sha256:
        bench["dataset"]["sha256"] = sha256
    if p95 is not None:
        bench["latency"]["passes"]["images"]["sample_ms"]["p95"] = p95
    report["benchmarks"] = {"retr": bench, "zs": report["benchmarks"]["zs"]}
    if environment:
        report["environment"].update(environment)
    report["per_sample_file"] = f"{name}.samples.json" if per_sample else None
    images = len(i2t)
    samples = {"retr": {"t2i": [{"text_index": i, "image_id": f"img-{i % images}", "rank": int(r)} for i, r in
                                enumerate(t2i)],
                        "i2t": [{"image_id": f"img-{i}", "rank": int(r)} for i, r in enumerate(i2t)]},
               "zs": samples["zs"]}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report))
    if per_sample:
        (tmp_path / f"{name}.samples.json").write_text(json.dumps(samples))
    return path


# --- the paired test --------------------------------------------------------------------------------------


def test_real_five_point_drop_is_significant_and_seed_noise_is_not():
    n = 5000
    base = seeded_ranks(n, 0.60, seed=1)
    worse = seeded_ranks(n, 0.55, seed=2)  # another training run, 5 points of R@1 lost
    noise = seeded_ranks(n, 0.60, seed=2)  # another training run of the same model: only seed noise
    hits = lambda ranks: (ranks <= 1).astype(float)  # noqa: E731

    drop = paired_test([(hits(base), hits(worse))], n_resamples=10_000, seed=0)
    assert drop.delta == pytest.approx(hits(worse).mean() - hits(base).mean())
    assert -0.07 < drop.delta < -0.03
    assert drop.p_value < 0.01 and drop.p_less < 0.01
    assert drop.ci95[0] < drop.delta < drop.ci95[1] < 0

    same = paired_test([(hits(base), hits(noise))], n_resamples=10_000, seed=0)
    assert abs(same.delta) < 0.01
    assert same.p_value > 0.2
    assert same.ci95[0] < 0 < same.ci95[1]
    # the two runs do differ query by query: the test is not trivially comparing identical outputs
    assert np.count_nonzero(hits(base) != hits(noise)) > 200


@pytest.mark.parametrize("recall_b", [0.60, 0.58])
def test_sign_flip_p_value_is_the_exact_mcnemar_test(recall_b):
    a = (seeded_ranks(2000, 0.60, seed=3) <= 1).astype(float)
    b = (seeded_ranks(2000, recall_b, seed=4) <= 1).astype(float)
    result = paired_test([(a, b)], n_resamples=20_000, seed=1)
    discordant, b_better = int(np.sum(a != b)), int(np.sum(b > a))
    exact = stats.binomtest(b_better, discordant, 0.5)
    tolerance = 4 * np.sqrt(exact.pvalue * (1 - exact.pvalue) / 20_000) + 1e-4
    assert result.p_value == pytest.approx(exact.pvalue, abs=tolerance)
    less = stats.binomtest(b_better, discordant, 0.5, alternative="less").pvalue
    assert result.p_less == pytest.approx(less, abs=4 * np.sqrt(less * (1 - less) / 20_000) + 1e-4)


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_p_value_matches_scipy_exact_permutation_test(statistic):
    rng = np.random.default_rng(7)
    a = rng.normal(size=14)
    b = a + rng.normal(0.4, 1.0, size=14)
    reduce = np.mean if statistic == "mean" else np.median
    exact = stats.permutation_test((a, b), lambda x, y, axis: reduce(y, axis=axis) - reduce(x, axis=axis),
                                   permutation_type="samples", n_resamples=np.inf, vectorized=True)
    assert exact.null_distribution.size == 2**14  # scipy enumerated every sign pattern
    result = paired_test([(a, b)], statistic, n_resamples=40_000, seed=2)
    assert result.delta == pytest.approx(reduce(b) - reduce(a))
    assert result.p_value == pytest.approx(exact.pvalue, abs=4 * np.sqrt(exact.pvalue / 40_000) + 1e-3)


def test_stratified_ci_matches_the_analytic_standard_error():
    # rsum-like: two strata of different sizes, each averaged over its own samples, then summed
    rng = np.random.default_rng(11)
    strata = []
    for n, shift in ((3000, 0.02), (600, -0.05)):
        a = rng.normal(size=n)
        strata.append((a, a + rng.normal(shift, 0.5, size=n)))
    result = paired_test(strata, n_resamples=8000, seed=3)
    expected = sum(b.mean() - a.mean() for a, b in strata)
    se = np.sqrt(sum(np.var(b - a) / len(a) for a, b in strata))
    assert result.delta == pytest.approx(expected)
    width = result.ci95[1] - result.ci95[0]
    assert width == pytest.approx(2 * 1.959964 * se, rel=0.08)
    assert (result.ci95[0] + result.ci95[1]) / 2 == pytest.approx(expected, abs=0.15 * se)


def test_null_runs_are_rejected_at_the_nominal_rate_and_the_ci_covers_zero():
    """200 pairs of runs that differ only by seed noise: the test rejects about 5% at alpha 0.05."""
    rejected = covered = 0
    for rep in range(200):
        a = (seeded_ranks(800, 0.5, seed=2 * rep, queries_seed=rep) <= 1).astype(float)
        b = (seeded_ranks(800, 0.5, seed=2 * rep + 1, queries_seed=rep) <= 1).astype(float)
        result = paired_test([(a, b)], n_resamples=500, seed=rep)
        rejected += result.p_value < 0.05
        covered += result.ci95[0] <= 0 <= result.ci95[1]
    assert 3 <= rejected <= 19  # binomial(200, 0.05): 10 expected, [3, 19] holds with probability > 0.99
    assert 180 <= covered <= 197


def test_same_seed_gives_the_same_result_and_bad_input_is_refused():
    a, b = np.arange(50.0), np.arange(50.0)[::-1]
    assert paired_test([(a, b)], seed=5) == paired_test([(a, b)], seed=5)
    with pytest.raises(ValueError):
        paired_test([(a, b[:10])])
    with pytest.raises(ValueError):
        paired_test([])


# --- per-sample values reproduce the reported metrics -----------------------------------------------------


@pytest.mark.parametrize("version", HISTORY)
def test_per_sample_values_reproduce_every_reported_metric(version):
    """From the golden's own per-sample rows, each testable metric recomputes to the value the harness reported
    (METEOR excepted: corpus METEOR is not a per-image mean)."""
    report = load_report(GOLDENS[version])
    samples = load_samples(GOLDENS[version], report)
    tested = []
    for name, bench in report["benchmarks"].items():
        names = list(bench["metrics"])
        for metric, entry in bench["metrics"].items():
            data = paired_values(bench["task"], metric, samples[name], samples[name], names)
            if data.reason:
                assert metric.startswith("Bleu") or metric in ("macro_f1", "ece"), (metric, data.reason)
                continue
            tested.append(metric)
            if metric != "METEOR":
                assert data.statistic_of(0) == pytest.approx(entry["value"], abs=1e-9), metric
    assert {"t2i_R@1", "i2t_median_rank", "rsum", "CIDEr", "ROUGE_L", "vqa_accuracy_yes/no", "top1", "top5",
            "mean_per_class_recall"} <= set(tested)


# --- the report loader ------------------------------------------------------------------------------------


def test_the_loader_knows_the_version_reports_are_written_in():
    assert READ_VERSION == SCHEMA_VERSION, (
        f"mmeval.reporting.report writes schema {SCHEMA_VERSION} but report_io.HISTORY ends at {READ_VERSION}: add the new "
        "version to HISTORY (with an upgrade in _UPGRADES if older reports need one) and a golden report for it")
    assert all(path.is_file() for path in GOLDENS.values()), "every schema version needs a golden report"


@pytest.mark.parametrize("version", HISTORY)
def test_every_schema_version_loads_upgraded(version):
    report = load_report(GOLDENS[version])
    assert report["schema_version"] == version
    assert report["loaded_schema_version"] == SCHEMA_VERSION
    assert set(report["benchmarks"]) == {"retr", "caps", "vqa", "zs"}
    for key in ("device_name", "cpu_name", "cpu_count", "torch_threads", "gpu_driver"):
        assert key in report["environment"]
    assert load_samples(GOLDENS[version], report)["retr"]["i2t"][0]["image_id"] == "test-000000"


def _write(tmp_path: Path, payload, name: str = "r.json") -> Path:
    path = tmp_path / name
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


@pytest.mark.parametrize("change, fragment", [
    (lambda r: r.update(schema_version="1.99.0"), "newer than this mmeval reads"),
    (lambda r: r.update(schema_version="2.0.0"), "newer than this mmeval reads"),
    (lambda r: r.update(schema_version="1.0.7"), "unknown report schema version 1.0.7"),
    (lambda r: r.update(schema_version="one"), "is not a version"),
    (lambda r: r.pop("schema_version"), "not an mmeval report"),
    (lambda r: r["benchmarks"]["retr"]["metrics"]["rsum"].update(value="high"), "benchmarks.retr.metrics.rsum.value"),
])
def test_unusable_reports_are_refused_in_one_line(tmp_path, change, fragment):
    report = json.loads(LATEST.read_text())
    change(report)
    path = _write(tmp_path, report)
    with pytest.raises(MmevalError) as caught:
        load_report(path)
    assert len(caught.value.lines()) == 1
    assert str(path) in str(caught.value) and fragment in str(caught.value)


def test_non_reports_are_refused(tmp_path):
    for payload, fragment in ((GOLDEN.joinpath("golden-v1.1.0.samples.json").read_text(), "per-sample file"),
                              ("[1, 2]", "got a JSON list"), ("{not json", "not valid JSON (line 1")):
        with pytest.raises(MmevalError, match=re.escape(fragment)):
            load_report(_write(tmp_path, payload))
    with pytest.raises(MmevalError, match="report not found"):
        load_report(tmp_path / "missing.json")


# --- the command ------------------------------------------------------------------------------------------


def test_compare_reads_every_schema_version():
    done = cli("compare", *GOLDENS.values(), "--format", "json", "--resamples", "200")
    assert done.exit_code == 0, done.output
    payload = json.loads(done.stdout)
    assert [r["schema_version"] for r in payload["reports"]] == list(HISTORY)
    rows = {(r["benchmark"], r["metric"]): r for r in payload["rows"]}
    old = json.loads(GOLDENS["1.0.0"].read_text())
    assert rows[("retr", "t2i_R@1")]["values"][0] == old["benchmarks"]["retr"]["metrics"]["t2i_R@1"]["value"]
    assert rows[("caps", "CIDEr")]["paired"][1]["p_value"] == 1.0  # the same model and data: identical outputs
    assert rows[("caps", "Bleu_4")]["paired"][1] is None and "corpus-level" in rows[("caps", "Bleu_4")]["notes"][1]
    assert "METEOR" in rows[("caps", "METEOR")]["notes"][1]
    # 1.0.0 has no p95: shown as missing, not invented
    assert rows[("retr", "latency images p95 ms/sample")]["values"][0] is None
    table = cli("compare", *GOLDENS.values(), "--resamples", "200")
    assert table.exit_code == 0 and "t2i_R@1" in table.stdout and "golden-v1.0.0" in table.stdout


def test_compare_table_json_csv_and_markdown_agree(tmp_path):
    base = retrieval_report(tmp_path, "base", seeded_ranks(5000, 0.6, 1), seeded_ranks(1000, 0.7, 1, 5))
    worse = retrieval_report(tmp_path, "worse", seeded_ranks(5000, 0.55, 2), seeded_ranks(1000, 0.7, 2, 5))
    as_json = json.loads(cli("compare", base, worse, "-f", "json").stdout)
    row = next(r for r in as_json["rows"] if r["metric"] == "t2i_R@1")
    assert row["deltas"][1] == pytest.approx(np.mean(seeded_ranks(5000, 0.55, 2) <= 1)
                                             - np.mean(seeded_ranks(5000, 0.6, 1) <= 1))
    assert row["paired"][1]["p_value"] < 0.01 and row["paired"][1]["n"] == 5000
    lines = list(csv.DictReader(io.StringIO(cli("compare", base, worse, "-f", "csv").stdout)))
    t2i = [line for line in lines if line["metric"] == "t2i_R@1"]
    assert len(t2i) == 2 and float(t2i[1]["p_value"]) == row["paired"][1]["p_value"]
    markdown = cli("compare", base, worse, "-f", "markdown").stdout
    assert "| retr | t2i_R@1 |" in markdown and f"{row['paired'][1]['p_value']:.2g}" in markdown


def test_compare_refuses_different_data_unless_forced(tmp_path):
    ranks = seeded_ranks(500, 0.6, 1), seeded_ranks(100, 0.6, 1, 5)
    a = retrieval_report(tmp_path, "a", *ranks)
    b = retrieval_report(tmp_path, "b", *ranks, sha256="0" * 64)
    done = cli("compare", a, b)
    assert done.exit_code == 2
    assert "benchmark 'retr'" in done.stderr and "different data" in done.stderr and "--force" in done.stderr
    forced = cli("compare", a, b, "--force", "-f", "json")
    assert forced.exit_code == 0
    rows = json.loads(forced.stdout)["rows"]
    assert all(r["paired"][1] is None for r in rows if r["benchmark"] == "retr")
    assert "compared anyway" in forced.stderr


def test_compare_warns_on_different_hardware_and_missing_samples(tmp_path):
    ranks = seeded_ranks(500, 0.6, 1), seeded_ranks(100, 0.6, 1, 5)
    a = retrieval_report(tmp_path, "a", *ranks)
    b = retrieval_report(tmp_path, "b", *ranks, environment={"device_name": "NVIDIA H200", "torch_threads": 16},
                         per_sample=False)
    done = cli("compare", a, b, "-f", "json")
    assert done.exit_code == 0, done.output
    assert "different hardware" in done.stderr and "NVIDIA H200" in done.stderr
    assert "no per-sample output" in done.stderr
    assert all(r["paired"][1] is None for r in json.loads(done.stdout)["rows"])


def test_compare_bad_input_exits_2(tmp_path):
    assert cli("compare", LATEST).exit_code == 2
    done = cli("compare", LATEST, tmp_path / "none.json")
    assert done.exit_code == 2 and "report not found" in done.stderr and "Traceback" not in done.output


def test_three_reports_each_against_the_first(tmp_path):
    i2t = seeded_ranks(1000, 0.7, 1, 5)
    paths = [retrieval_report(tmp_path, f"r{n}", seeded_ranks(5000, recall, n), i2t)
             for n, recall in enumerate((0.60, 0.60, 0.50))]
    done = cli("compare", *paths, "-f", "json")
    assert done.exit_code == 0, done.output
    row = next(r for r in json.loads(done.stdout)["rows"] if r["metric"] == "t2i_R@1")
    assert row["paired"][0] is None and row["deltas"][0] is None
    assert row["paired"][1]["p_value"] > 0.01 and row["paired"][2]["p_value"] < 0.001
    assert row["deltas"][2] == pytest.approx(row["values"][2] - row["values"][0])
    assert all(r["paired"][1]["p_value"] == 1.0 for r in json.loads(done.stdout)["rows"] if r["metric"] == "i2t_R@1")

"""`mmeval gate`: check a candidate report against rules (and a baseline report) for CI.

Every rule is matched (glob) against the reports; each (rule, matched metric / pass / bias number / robustness
number) is one check that passes, fails or is skipped (a drop rule on a metric the baseline lacks; an `optional` rule whose
pattern matches nothing, one skipped row). The gate fails when any check fails. What the gate cannot judge is
an input error (exit 2), never a silent pass: a pattern of a non-optional rule that matches nothing, a
significance rule without per-sample output, latency that was not measured (outputs from the cache) or a
statistic the report's schema version lacks (p95 before 1.1.0), a robustness rule on reports without a
robustness block.

A drop rule with `significant: true` fails only when the worsening exceeds its limit *and* the paired
sign-flip permutation test (mmeval.metrics.stats.paired) finds the candidate worse at `alpha`, one-sided: a gate only
fails on drops, so only a drop counts as evidence. When too few samples differ for any outcome to reach alpha
(9 images, 4 of them changed: p >= 1/16), the check says so and the gate warns if that let a drop pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from mmeval.config.gate import KINDS, BiasRule, GateRules, LatencyRule, MetricRule, RobustnessRule, Rule
from mmeval.errors import MmevalError
from mmeval.metrics.stats.paired import paired_test, significant_worsening
from mmeval.reporting.compare import (
    LoadedReport,
    cannot_reach,
    check_same_data,
    dataset_mismatches,
    hardware_differences,
)
from mmeval.reporting.gate_output import fmt, to_markdown, write_junit  # noqa: F401 (the CLI's renderings)
from mmeval.reporting.gate_targets import absent, bias_numbers, complete, metric_values, passes, robust
from mmeval.reporting.robustness_numbers import has_robustness
from mmeval.reporting.sample_values import paired_values

Status = Literal["pass", "fail", "skip"]
_WHAT = {"metric": "benchmark/metric", "latency": "benchmark/pass", "bias": "bias number",
         "robustness": "robustness number"}
_EPS = 1e-12  # float slack on limits: a value exactly at its limit passes


@dataclass
class Check:
    """One rule applied to one matched target."""

    rule: int
    rule_name: str
    kind: str
    target: str
    limit: str
    status: Status = "pass"
    candidate: float | None = None
    baseline: float | None = None
    p_value: float | None = None
    messages: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.status = "fail"
        self.messages.append(message)


@dataclass
class GateResult:
    candidate: Path
    baseline: Path | None
    checks: list[Check]
    warnings: list[str]

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def n_failed(self) -> int:
        return sum(c.status == "fail" for c in self.checks)


def _match(pattern: str, keys: list[str]) -> list[str]:
    return [k for k in keys if fnmatchcase(k, pattern)]


JUDGE_PREFIX = "judge_"  # an opt-in judge's metrics (judge_accuracy, judge_score): checked only by a rule naming them


def _unless_judge_named(pattern: str, matched: list[str]) -> list[str]:
    """A metric rule checks judge metrics only when its metric pattern names them ('*/judge_score', not '*/*')."""
    if JUDGE_PREFIX in pattern.rsplit("/", 1)[-1]:
        return matched
    return [k for k in matched if not k.rsplit("/", 1)[-1].startswith(JUDGE_PREFIX)]


def _no_match(where: str, pattern: str, keys: list[str], what: str) -> str:
    shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
    return f"{where}: '{pattern}' matches no {what} of the reports (there are: {shown or 'none'})"


_PER_TARGET = re.compile(r"rules\[(\d+)\] \((.+?)\)(:? .*)")


def _one_line_per_problem(problems: list[str]) -> list[str]:
    """The same problem of one rule at several targets (`rules[0] (a/x): pass --baseline`, then b/x, ...) as one
    line naming every target: one line per problem, not per match of the rule's pattern."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for problem in dict.fromkeys(problems):
        found = _PER_TARGET.fullmatch(problem)
        key = (found[1], found[3]) if found else (problem, "")
        grouped.setdefault(key, []).append(found[2] if found else "")
    return [f"rules[{key[0]}] ({', '.join(targets)}){key[1]}" if targets[0] else key[0]
            for key, targets in grouped.items()]


class _Gate:
    """Evaluates the rules; input problems are collected and raised together."""

    def __init__(self, rules: GateRules, candidate: LoadedReport, baseline: LoadedReport | None):
        self.rules, self.candidate, self.baseline = rules, candidate, baseline
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.mismatched = {name for name, _ in dataset_mismatches([baseline, candidate])} if baseline else set()

    def run(self) -> GateResult:
        checks: list[Check] = []
        evaluate_one = {"metric": self._metric, "latency": self._latency, "bias": self._bias,
                        "robustness": self._robustness}
        any_match = False
        for n, rule in enumerate(self.rules.rules):
            kind = next(k for k in KINDS if hasattr(rule, k))
            name = rule.name or f"rules[{n}]"
            targets = self._targets(n, rule, kind)
            any_match = any_match or bool(targets)
            if not targets and rule.optional:
                checks.append(Check(n, name, kind, getattr(rule, kind), self._limit(rule), "skip",
                                    messages=[f"optional: matches no {_WHAT[kind]} of the reports"]))
            checks += [evaluate_one[kind](n, name, rule, key) for key in targets]
        if not any_match and not self.problems:
            self.problems.append("no rule matches anything in the reports, so nothing was checked (every rule is "
                                 "optional and skipped): is this the right rules file for these reports?")
        if self.problems:
            raise MmevalError("\n".join(_one_line_per_problem(self.problems)))
        return GateResult(self.candidate.path, self.baseline.path if self.baseline else None, checks, self.warnings)

    def _targets(self, n: int, rule: Rule, kind: str) -> list[str]:
        """What the rule's pattern matches in either report; matching nothing is a problem unless optional."""
        tables = {"metric": metric_values, "latency": passes, "bias": bias_numbers, "robustness": robust}[kind]
        found = {**tables(self.baseline), **tables(self.candidate)}
        keys = list(found)
        if kind == "robustness":  # a perturbation's name matches in either spelling (robustness_numbers)
            matched = [k for k in keys if any(fnmatchcase(a, rule.robustness) for a in found[k].aliases)]
        else:
            matched = _match(getattr(rule, kind), keys)
        if kind == "metric":
            matched = _unless_judge_named(rule.metric, matched)
        if not matched and not rule.optional:
            where = f"rules[{n}].{kind}"
            if kind == "robustness" and not any(has_robustness(r.report) for r in (self.candidate, self.baseline)
                                                if r is not None):
                self.problems.append(f"{where}: '{rule.robustness}': no benchmark of the reports has a robustness "
                                     "block (run it with a `perturb` section); mark the rule `optional: true` to "
                                     "skip it on such reports")
                return matched
            self.problems.append(_no_match(where, getattr(rule, kind), keys, _WHAT[kind]) +
                                 "; mark the rule `optional: true` to skip it on such reports")
        return matched

    def _limit(self, rule: Rule) -> str:
        """The rule's limits as one line of the table, e.g. '>= 0.3, drop <= 0.01 or p >= 0.01'."""
        if isinstance(rule, LatencyRule):
            return ", ".join(([f"{rule.stat} <= {rule.max_ms:g} ms"] if rule.max_ms is not None else []) + (
                [f"{rule.stat} <= baseline +{rule.max_increase_relative:.0%}"]
                if rule.max_increase_relative is not None else []))
        if isinstance(rule, BiasRule):
            return ", ".join(([f"<= {rule.max:g}"] if rule.max is not None else []) + (
                [f">= {rule.min:g}"] if rule.min is not None else []))
        if isinstance(rule, RobustnessRule):
            return ", ".join(([f">= {rule.min:g}"] if rule.min is not None else []) + (
                [f"<= {rule.max:g}"] if rule.max is not None else []) + (
                [f"drop <= {rule.max_drop:g}"] if rule.max_drop is not None else []) + (
                [f"drop <= {rule.max_drop_relative:.1%}"] if rule.max_drop_relative is not None else []))
        limits = ([f">= {rule.min:g}"] if rule.min is not None else []) + (
            [f"<= {rule.max:g}"] if rule.max is not None else [])
        max_drop, max_relative = rule.drop_limits()
        if max_drop is not None:
            limits.append(f"drop <= {max_drop:g}")
        if max_relative is not None:
            limits.append(f"drop <= {max_relative:.1%}")
        if rule.significant:
            limits[-1] += f" or p >= {rule.alpha or self.rules.alpha:g}"  # an over-limit drop fails only if significant
        return ", ".join(limits)

    def _need_baseline(self, where: str) -> bool:
        if self.baseline is None:
            self.problems.append(f"{where}: compares with the baseline; pass --baseline")
            return False
        return True

    def _metric(self, n: int, name: str, rule: MetricRule, key: str) -> Check:
        max_drop, max_relative = rule.drop_limits()
        alpha = rule.alpha or self.rules.alpha
        check = Check(n, name, "metric", key, self._limit(rule))
        bench, metric = key.split("/", 1)
        candidate, baseline = metric_values(self.candidate), metric_values(self.baseline)
        check.candidate, check.baseline = candidate.get(key), baseline.get(key)
        if key not in candidate:
            check.fail(f"not in the candidate ({absent(self.candidate, bench)})")
            return check
        if check.candidate is None:
            check.fail("undefined (null) in the candidate")
            return check
        if rule.min is not None and check.candidate < rule.min - _EPS:
            check.fail(f"{check.candidate:.4g} < min {rule.min:g}")
        if rule.max is not None and check.candidate > rule.max + _EPS:
            check.fail(f"{check.candidate:.4g} > max {rule.max:g}")
        if max_drop is None and max_relative is None:
            return check
        if not self._need_baseline(f"rules[{n}] ({key})"):
            return check
        if check.baseline is None:
            return _no_baseline(check, rule)
        higher = self.candidate.report["benchmarks"][bench]["metrics"][metric]["higher_is_better"]
        drop, allowed = _worsening(check, higher, max_drop, max_relative)
        exceeded = drop > allowed + _EPS
        text = f"drop {drop:+.4g} (allowed {allowed:.4g})"
        if rule.significant:
            result = self._paired(n, bench, metric, key)
            if result is None:
                return check
            check.p_value = result.p_less if higher else result.p_greater
            significant = significant_worsening(result, higher, alpha)
            text += f", one-sided p = {check.p_value:.2g} {'<' if significant else '>='} {alpha:g}"
            if drop > _EPS and result.cannot_reach(alpha):
                text += f"; {cannot_reach(result, alpha)}"
                if exceeded:
                    self.warnings.append(f"{name} ({key}): a drop of {drop:.4g} (allowed {allowed:.4g}) passed only "
                                         f"because the paired test {cannot_reach(result, alpha)}: it could not fail "
                                         "here; use more samples, or a rule without `significant`")
            exceeded = exceeded and significant
        if exceeded:
            check.fail(text)
        else:
            check.messages.append(text)
        return check

    def _paired(self, n: int, bench: str, metric: str, key: str):
        where = f"rules[{n}] ({key}): significant: true"
        if bench in self.mismatched:
            self.problems.append(f"{where} needs both runs on the same data; the dataset sha256 differs")
            return None
        for item in (self.baseline, self.candidate):
            if item.samples is None:
                self.problems.append(f"{where} needs per-sample output: {item.samples_problem}")
                return None
        names = list(self.candidate.report["benchmarks"][bench]["metrics"])
        task = self.candidate.report["benchmarks"][bench]["task"]
        data = paired_values(task, metric, self.baseline.samples.get(bench), self.candidate.samples.get(bench), names)
        if data.reason:
            self.problems.append(f"{where}: no paired test for {metric} ({data.reason})")
            return None
        return paired_test(data.strata, data.statistic, self.rules.resamples, self.rules.seed, data.clusters)

    def _latency(self, n: int, name: str, rule: LatencyRule, key: str) -> Check:
        check = Check(n, name, "latency", key, self._limit(rule))
        where = f"rules[{n}] ({key})"
        candpasses = passes(self.candidate)
        if key not in candpasses:
            check.fail(f"not in the candidate ({absent(self.candidate, key.split('/', 1)[0])})")
            return check
        check.candidate = self._latency_value(where, self.candidate, candpasses[key], rule.stat)
        if check.candidate is None:
            return check
        if rule.max_ms is not None and check.candidate > rule.max_ms + _EPS:
            check.fail(f"{rule.stat} {check.candidate:.3g} ms > {rule.max_ms:g} ms")
        if rule.max_increase_relative is None or not self._need_baseline(where):
            return check
        basepasses = passes(self.baseline)
        if key not in basepasses:
            check.messages.append("not in the baseline: increase not checked")
            return check
        check.baseline = self._latency_value(where, self.baseline, basepasses[key], rule.stat)
        if check.baseline is None:
            return check
        differences = hardware_differences(self.baseline.report, self.candidate.report)
        if differences:
            self.warnings.append(f"latency compared across different hardware or settings "
                                 f"({'; '.join(differences)})")
        allowed = check.baseline * (1 + rule.max_increase_relative)
        text = f"{rule.stat} {check.candidate:.3g} ms vs baseline {check.baseline:.3g} ms (allowed {allowed:.3g})"
        if check.candidate > allowed + _EPS:
            check.fail(text)
        else:
            check.messages.append(text)
        return check

    def _latency_value(self, where: str, item: LoadedReport, figures: dict[str, Any], stat: str) -> float | None:
        if not figures.get("n_batches"):
            self.problems.append(f"{where}: {item.path} has no latency for this pass (model outputs came from the "
                                 "output cache); run it with --no-cache")
            return None
        value = (figures.get("sample_ms") or {}).get(stat)
        if value is None:
            self.problems.append(f"{where}: {item.path} has no {stat} latency (report schema "
                                 f"{item.report['schema_version']}; p95 was added in 1.1.0)")
        return value

    def _bias(self, n: int, name: str, rule: BiasRule, key: str) -> Check:
        check = Check(n, name, "bias", key, self._limit(rule))
        candidate = bias_numbers(self.candidate)
        check.candidate, check.baseline = candidate.get(key), bias_numbers(self.baseline).get(key)
        if key not in candidate:
            check.fail(f"not in the candidate ({absent(self.candidate, key.split('/', 1)[0])})")
        elif check.candidate is None:
            check.fail("undefined (null) in the candidate")
        else:
            if rule.max is not None and check.candidate > rule.max + _EPS:
                check.fail(f"{check.candidate:.4g} > max {rule.max:g}")
            if rule.min is not None and check.candidate < rule.min - _EPS:
                check.fail(f"{check.candidate:.4g} < min {rule.min:g}")
        return check

    def _robustness(self, n: int, name: str, rule: RobustnessRule, key: str) -> Check:
        """Bounds on a robustness number, and its worsening against the baseline's same number."""
        check = Check(n, name, "robustness", key, self._limit(rule))
        candidate, baseline = robust(self.candidate), robust(self.baseline)
        mine, theirs = candidate.get(key), baseline.get(key)
        check.candidate, check.baseline = mine.value if mine else None, theirs.value if theirs else None
        if mine is None:
            bench = key.split("/", 1)[0]
            reason = absent(self.candidate, bench)
            if bench in complete(self.candidate):
                has_block = isinstance(self.candidate.report["benchmarks"][bench].get("robustness"), dict)
                reason = "its robustness block lacks this number" if has_block else "it has no robustness block"
            check.fail(f"not in the candidate ({reason})")
            return check
        if check.candidate is None:
            check.fail("undefined (null) in the candidate" + (f": {mine.note}" if mine.note else ""))
            return check
        if rule.min is not None and check.candidate < rule.min - _EPS:
            check.fail(f"{check.candidate:.4g} < min {rule.min:g}")
        if rule.max is not None and check.candidate > rule.max + _EPS:
            check.fail(f"{check.candidate:.4g} > max {rule.max:g}")
        if rule.max_drop is None and rule.max_drop_relative is None:
            return check
        if not self._need_baseline(f"rules[{n}] ({key})"):
            return check
        if check.baseline is None:
            return _no_baseline(check, rule)
        drop, allowed = _worsening(check, mine.higher_is_better, rule.max_drop, rule.max_drop_relative)
        text = f"drop {drop:+.4g} (allowed {allowed:.4g})"
        if drop > allowed + _EPS:
            check.fail(text)
        else:
            check.messages.append(text)
        return check


def _no_baseline(check: Check, rule: MetricRule | RobustnessRule) -> Check:
    check.messages.append("no baseline value: drop not checked")
    if check.status == "pass" and rule.min is None and rule.max is None:
        check.status = "skip"
    return check


def _worsening(check: Check, higher: bool, max_drop: float | None, max_relative: float | None) -> tuple[float, float]:
    """(drop, allowed drop) of the candidate against the baseline: a fall if higher is better, else a rise."""
    drop = (check.baseline - check.candidate) if higher else (check.candidate - check.baseline)
    allowed = min(x for x in (max_drop, None if max_relative is None else max_relative * abs(check.baseline))
                  if x is not None)
    return drop, allowed


def evaluate(rules: GateRules, candidate: LoadedReport, baseline: LoadedReport | None = None,
             force: bool = False) -> GateResult:
    """Apply every rule; MmevalError (one line per problem) for what the gate cannot judge."""
    warnings = check_same_data([baseline, candidate], force) if baseline is not None else []
    result = _Gate(rules, candidate, baseline).run()
    result.warnings = list(dict.fromkeys(warnings + result.warnings))
    return result

"""Renderings of a gate result (`mmeval.reporting.gate`): the CI job summary (Markdown) and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from mmeval.errors import MmevalError

if TYPE_CHECKING:
    from mmeval.reporting.gate import Check, GateResult


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def to_markdown(result: GateResult) -> str:
    """A summary fit for a CI job page (GITHUB_STEP_SUMMARY): the verdict, then every check."""
    verdict = "passed" if result.passed else f"FAILED ({result.n_failed} of {len(result.checks)} checks)"
    icon = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭️ skip"}
    lines = [f"## mmeval gate: {verdict}", "",
             f"candidate `{result.candidate}`" + (f", baseline `{result.baseline}`" if result.baseline else ""), "",
             "| rule | target | candidate | baseline | limit | p | result | detail |", "|---" * 8 + "|"]
    for c in result.checks:
        cells = [c.rule_name, c.target, fmt(c.candidate), fmt(c.baseline), c.limit,
                 "" if c.p_value is None else f"{c.p_value:.2g}", icon[c.status], "; ".join(c.messages)]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    lines += [""] + [f"> warning: {w}" for w in result.warnings]
    return "\n".join(lines).rstrip() + "\n"


def write_junit(result: GateResult, path: Path) -> None:
    """JUnit XML: one test suite per rule, one test case per matched target (failures and skips as JUnit has)."""
    root = ET.Element("testsuites", name="mmeval gate", tests=str(len(result.checks)),
                      failures=str(result.n_failed), errors="0")
    by_rule: dict[int, list[Check]] = {}
    for check in result.checks:
        by_rule.setdefault(check.rule, []).append(check)
    for index, checks in by_rule.items():
        suite = ET.SubElement(root, "testsuite", name=f"rules[{index}] {checks[0].rule_name}".strip(),
                              tests=str(len(checks)), failures=str(sum(c.status == "fail" for c in checks)),
                              skipped=str(sum(c.status == "skip" for c in checks)), errors="0")
        for c in checks:
            case = ET.SubElement(suite, "testcase", classname=f"mmeval.reporting.gate.{c.kind}", name=f"{c.target} {c.limit}",
                                 time="0")
            detail = "; ".join([f"candidate {fmt(c.candidate)}, baseline {fmt(c.baseline) or 'n/a'}", *c.messages])
            if c.status == "fail":
                ET.SubElement(case, "failure", message="; ".join(c.messages), type=c.kind).text = detail
            elif c.status == "skip":
                ET.SubElement(case, "skipped", message="; ".join(c.messages))
            else:
                ET.SubElement(case, "system-out").text = detail
    tree = ET.ElementTree(root)
    ET.indent(tree)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tree.write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise MmevalError(f"--junit: cannot write {path} ({exc.strerror or exc})") from None

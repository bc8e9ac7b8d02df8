"""The rules file of `mmeval gate` (YAML): typed, unknown keys rejected, every problem reported at once with its
place in the file, in the run config's style (`gates.yaml: rules[2].max_drop: ...`).

Each rule has exactly one of `metric`, `latency`, `bias` or `robustness`, a glob pattern naming what it checks, and may be
`optional` (skipped when its pattern matches nothing); configs/gates.example.yaml documents every field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from mmeval.config.file import _UniqueKeyLoader, _yaml_problem
from mmeval.config.run import format_loc
from mmeval.errors import ConfigError
from mmeval.registry import did_you_mean

KINDS = ("metric", "latency", "bias", "robustness")
_ONE_OF = ", ".join(KINDS)


def _slashed(value: str, example: str) -> str:
    if "/" not in value or value.startswith("/"):
        raise ValueError(f"expected 'benchmark/...' (glob patterns allowed), e.g. '{example}'; got {value!r}")
    return value


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="a label for the rule in the table, summary and JUnit file")
    optional: bool = Field(False, description="when the pattern matches nothing in the reports, skip the rule "
                           "(listed as skipped) instead of stopping with exit 2; lets one rules file serve several "
                           "kinds of report")


class MetricRule(_Rule):
    """Bounds on a headline metric, absolute or relative to the baseline."""

    metric: str = Field(description="'benchmark/metric' glob, e.g. '*/t2i_R@1' or 'coco5k/*'")
    min: float | None = Field(None, description="the candidate's value must be >= min")
    max: float | None = Field(None, description="the candidate's value must be <= max")
    max_drop: float | None = Field(None, ge=0, description="largest allowed worsening vs the baseline, in the "
                                   "metric's units (a drop for higher-is-better metrics, a rise otherwise)")
    max_drop_relative: float | None = Field(None, ge=0, description="largest allowed worsening as a fraction "
                                            "of the baseline value (0.02 = 2%)")
    significant: bool = Field(False, description="drop rules fail only when the worsening is also significant "
                              "(one-sided paired permutation test at alpha); alone: any significant worsening")
    alpha: float | None = Field(None, gt=0, lt=1, description="significance level (default: the file's alpha)")

    @field_validator("metric")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return _slashed(value, "*/t2i_R@1")

    @model_validator(mode="after")
    def _has_check(self) -> MetricRule:
        if all(v is None for v in (self.min, self.max, self.max_drop, self.max_drop_relative)) and not self.significant:
            raise ValueError("give at least one of min, max, max_drop, max_drop_relative, significant")
        if self.alpha is not None and not self.significant:
            raise ValueError("alpha is only used with significant: true")
        return self

    def drop_limits(self) -> tuple[float | None, float | None]:
        """(absolute, relative) allowed worsening; `significant` alone means any significant worsening."""
        if self.significant and self.max_drop is None and self.max_drop_relative is None:
            return 0.0, None
        return self.max_drop, self.max_drop_relative


class LatencyRule(_Rule):
    """A latency budget on a model pass: per-sample latency (ms) after warm-up."""

    latency: str = Field(description="'benchmark/pass' glob; passes: images, texts, generate (e.g. '*/generate')")
    stat: Literal["mean", "p50", "p90", "p95", "p99", "max"] = Field("p95", description="which statistic of "
                                                                     "the per-sample latency")
    max_ms: float | None = Field(None, gt=0, description="the candidate's latency must be <= max_ms")
    max_increase_relative: float | None = Field(None, ge=0, description="largest allowed increase as a "
                                                "fraction of the baseline's latency (0.10 = +10%)")

    @field_validator("latency")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return _slashed(value, "*/images")

    @model_validator(mode="after")
    def _has_check(self) -> LatencyRule:
        if self.max_ms is None and self.max_increase_relative is None:
            raise ValueError("give max_ms, max_increase_relative or both")
        return self


class BiasRule(_Rule):
    """A bias budget: bounds on numbers of the candidate's bias block."""

    bias: str = Field(description="'benchmark/attribute/...' glob into benchmarks.<name>.bias.attributes, "
                      "e.g. '*/background/sliced/top1/gap'")
    max: float | None = Field(None, description="each matched number must be <= max (e.g. a gap)")
    min: float | None = Field(None, description="each matched number must be >= min (e.g. a min_max_ratio)")

    @field_validator("bias")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return _slashed(value, "*/background/sliced/*/gap")

    @model_validator(mode="after")
    def _has_check(self) -> BiasRule:
        if self.max is None and self.min is None:
            raise ValueError("give max, min or both")
        return self


class RobustnessRule(_Rule):
    """Bounds on a number of a benchmark's robustness block (mmeval.reporting.robustness_numbers), absolute or
    relative to the baseline report's same number. No significance test: the perturbed passes keep no
    per-sample output."""

    robustness: str = Field(description="'benchmark/metric/number' glob into the robustness blocks; numbers: "
                            "grid/<perturbation>@<severity>, relative/<perturbation>@<severity>, worst, "
                            "worst_relative, mean_relative, mce, relative_mce, ce/<perturbation>; e.g. "
                            "'*/t2i_R@1/relative/image:*@3'")
    min: float | None = Field(None, description="each matched number must be >= min (e.g. a relative robustness)")
    max: float | None = Field(None, description="each matched number must be <= max (e.g. an mCE)")
    max_drop: float | None = Field(None, ge=0, description="largest allowed worsening vs the baseline's same "
                                   "number (a drop where higher is better; a rise for mCE and ranks)")
    max_drop_relative: float | None = Field(None, ge=0, description="largest allowed worsening as a fraction "
                                            "of the baseline's number (0.05 = 5%)")

    @field_validator("robustness")
    @classmethod
    def _pattern(cls, value: str) -> str:
        value = _slashed(value, "*/t2i_R@1/worst_relative")
        if value.count("/") < 2 and "*" not in value:
            raise ValueError(f"expected 'benchmark/metric/number', e.g. '*/t2i_R@1/mean_relative'; got {value!r}")
        return value

    @model_validator(mode="after")
    def _has_check(self) -> RobustnessRule:
        if all(v is None for v in (self.min, self.max, self.max_drop, self.max_drop_relative)):
            raise ValueError("give at least one of min, max, max_drop, max_drop_relative")
        return self


def _kind(raw: Any) -> str | None:
    if isinstance(raw, BaseModel):
        return next(k for k in KINDS if hasattr(raw, k))
    if isinstance(raw, dict):
        present = [k for k in KINDS if k in raw]
        return present[0] if len(present) == 1 else None
    return None


Rule = Annotated[
    Union[Annotated[MetricRule, Tag("metric")], Annotated[LatencyRule, Tag("latency")],
          Annotated[BiasRule, Tag("bias")], Annotated[RobustnessRule, Tag("robustness")]],
    Discriminator(_kind, custom_error_type="rule_kind",
                  custom_error_message=f"each rule needs exactly one of the keys {_ONE_OF}"),
]


class GateRules(BaseModel):
    """A rules file: defaults for the significance test, then the rules."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.05, gt=0, lt=1, description="default significance level of `significant` rules")
    resamples: int = Field(10_000, ge=100, description="permutation / bootstrap resamples of the paired test")
    seed: int = Field(0, description="seed of the paired test")
    rules: list[Rule] = Field(min_length=1, description=f"the rules; each has one of {_ONE_OF}")


_RULE_CLASSES = {"metric": MetricRule, "latency": LatencyRule, "bias": BiasRule, "robustness": RobustnessRule}


def _describe(error: dict[str, Any], raw: Any) -> str:
    """One line per pydantic error, its location without pydantic's union tag (rules[0].max_drop)."""
    loc = tuple(error["loc"])
    owner: type[BaseModel] = GateRules
    if len(loc) >= 3 and loc[0] == "rules" and loc[2] in _RULE_CLASSES:
        owner, loc = _RULE_CLASSES[loc[2]], loc[:2] + loc[3:]
    elif len(loc) == 2 and loc[0] == "rules":
        owner = None
    kind, where = error["type"], format_loc(loc)
    if kind == "extra_forbidden" and owner is not None:
        known = sorted(owner.model_fields)
        return f"{where}: unknown key.{did_you_mean(str(loc[-1]), known)} Valid keys here: {', '.join(known)}"
    if kind == "missing":
        field = owner.model_fields.get(loc[-1]) if owner is not None else None
        about = f" ({field.description})" if field is not None and field.description else ""
        return f"{where}: required key is missing{about}"
    if kind == "rule_kind" and isinstance(error.get("input"), dict):
        given = [k for k in KINDS if k in error["input"]]
        return (f"{where}: a rule has exactly one of the keys {_ONE_OF}; got "
                f"{' and '.join(given) if given else 'none of them'}")
    message = error["msg"].removeprefix("Value error, ")
    if kind not in ("value_error", "rule_kind") and "input" in error and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return f"{where}: {message}"


def load_rules(path: Path) -> GateRules:
    """Read and validate a rules file; ConfigError lists every problem, each with its place in the file."""
    source = str(path)
    if not path.is_file():
        raise ConfigError(source, ["expected a YAML file, got a folder" if path.is_dir()
                                   else f"rules file not found: {path}"])
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {_yaml_problem(exc)}"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read the rules file ({exc})"]) from exc
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(source, [f"expected a mapping with keys: {', '.join(GateRules.model_fields)}; got {got}"])
    try:
        return GateRules.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e, raw) for e in exc.errors()]) from None

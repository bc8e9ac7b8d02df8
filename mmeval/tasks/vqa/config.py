"""The settings of a question-answering benchmark (VQA; multiple choice adds nothing but its data)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig
from mmeval.config.bias import BiasConfig
from mmeval.config.served import ServedConfig


class QuestionsConfig(BenchmarkConfig):
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="answer decoding")
    prompt_template: str | None = Field(None, description="the instruction, with {question} (and {options}); "
                                        "default: a short-answer / option-letter instruction")


class VQAConfig(QuestionsConfig):
    bias: BiasConfig | None = Field(None, description="bias and fairness metrics by per-image attributes")
    answer_normalisation: Literal["eval_server", "gtvision_2021", "normalise_both"] = Field(
        "eval_server", description="which official VQA script's answer normalisation: the evaluation server's "
        "(default), GT-Vision-Lab's since 2021, or both sides always (see mmeval/metrics/vqa.py)")
    judge: ServedConfig | None = Field(None, description="opt-in: a served model that grades each answer against "
                                       "the references (metric judge_accuracy, beside the rule-based ones)")

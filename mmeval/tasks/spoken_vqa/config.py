"""The settings of a spoken-question VQA benchmark: which mode answers the questions, and how.

`mode: pipeline` (the default): the benchmark's `recognizer:` transcribes each spoken question and the run's model
(an answerer) answers the transcript. `mode: one_model`: the run's model takes the image and the question's audio
together (capability `spoken_answerer`) and there is no recogniser. The mode is stated, never guessed from which
fields are present, and each mode refuses the other's fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mmeval.config.audio import AudioSettings
from mmeval.config.base import Loc
from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig
from mmeval.config.model import ModelConfig, _model_problems
from mmeval.registry import MODELS

MODES = ("pipeline", "one_model")
SPOKEN_PROMPT = "Answer the question asked in the audio about this image using a single word or phrase."


class SpokenVQAConfig(BenchmarkConfig):
    mode: Literal["pipeline", "one_model"] = Field(
        "pipeline", description="spoken_vqa: pipeline (recognizer -> the run's answerer) or one_model (the run's "
                                "model takes image + audio: capability spoken_answerer)")
    recognizer: ModelConfig | None = Field(None, description="spoken_vqa, mode pipeline (required there): the speech "
                                           "recogniser (a speech_recognizer model) whose transcripts the run's model "
                                           "answers")  # fmt: skip
    prompt_template: str | None = Field(None, description="spoken_vqa: prompt with {question} for the text questions "
                                        "(default: the model's own, else the vqa task's)")  # fmt: skip
    spoken_prompt: str = Field(SPOKEN_PROMPT, description="spoken_vqa, mode one_model: the text instruction sent with "
                                                          "each image and spoken question")
    measure_wer: bool = Field(True, description="spoken_vqa, mode one_model: when the model can also transcribe "
                                                "(speech_recognizer), measure the questions' WER with its transcripts "
                                                "(a separate pass)")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="answer decoding")
    recognizer_generation: GenerationConfig = Field(
        default_factory=GenerationConfig, description="spoken_vqa: the recogniser's decoding (one_model: the "
                                                      "model's own transcription, when measured)"
    )
    normalizer: Literal["none", "basic", "whisper_en"] = Field(
        "basic", description="spoken_vqa: text normaliser applied to both sides before the questions' WER"
    )
    audio: AudioSettings = Field(default_factory=AudioSettings, description="how the spoken questions are decoded")

    @classmethod
    def cross_problems(cls, raw: dict[str, Any]) -> list[tuple[Loc, str]]:
        """The mode and its fields; the recogniser: a valid model entry that can transcribe."""
        mode = raw.get("mode", "pipeline")
        if mode not in MODES:
            return []  # pydantic names the allowed values
        recognizer = raw.get("recognizer")
        if mode == "one_model":
            if recognizer is not None:
                return [(("recognizer",), "not used in mode one_model (the run's model hears the questions itself); "
                                          "remove it, or set mode: pipeline")]
            return []
        problems = [((key,), "read in mode one_model only; set mode: one_model or remove it")
                    for key in ("spoken_prompt", "measure_wer") if key in raw]  # fmt: skip
        if recognizer is None:
            problems.append((("recognizer",), "required in mode pipeline (the speech recogniser whose transcripts "
                                              "the model answers); or set mode: one_model for a model that takes the "
                                              "audio"))  # fmt: skip
        if not isinstance(recognizer, dict):
            return problems
        problems += [(("recognizer", *loc), message) for loc, message in _model_problems(recognizer)]
        kind = recognizer.get("type")
        if isinstance(kind, str) and kind in MODELS and "speech_recognizer" not in MODELS[kind].capabilities:
            message = f"the recognizer must be a speech_recognizer; model type '{kind}' is not"
            problems.append((("recognizer", "type"), message))
        return problems


def needed_capability(bench: Any) -> str:
    """What the run's model must do: answer text (pipeline) or take image + audio (one_model)."""
    mode = bench.get("mode", "pipeline") if isinstance(bench, dict) else getattr(bench, "mode", "pipeline")
    return "spoken_answerer" if mode == "one_model" else "answerer"

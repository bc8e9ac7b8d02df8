"""Speech recognition: corpus WER and CER with S / D / I counts, per-utterance distribution, RTFx."""

from __future__ import annotations

from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.speech_recognition.config import SpeechRecognitionConfig

METRICS = {
    "wer": (False, ("corpus word error rate (S + D + I) / N under the benchmark's first normaliser (jiwer's "
                    "alignment; empty references add insertions only)")),
    "cer": (False, "corpus character error rate, the same over characters (spaces included, as jiwer)"),
    "wer_<normaliser>": (False, "corpus WER under each further normaliser (none, basic, whisper_en)"),
    "cer_<normaliser>": (False, "corpus CER under each further normaliser"),
    "rtfx": (True, "seconds of audio transcribed per second of model time (not measured when outputs were cached)"),
}

TASK = TaskSpec(
    name="speech_recognition",
    summary="speech recognition: corpus WER / CER with S/D/I counts, per-utterance distribution, RTFx",
    needs="speech_recognizer",
    config=SpeechRecognitionConfig,
    formats=("librispeech", "nemo", "hf_speech", "spoken_shapes"),
    reads="transcripts",
    metrics=METRICS,
    run="mmeval.tasks.speech_recognition.run:run",
    load_data="mmeval.tasks.speech_recognition.run:load_data",
    headline=first_present(("wer", "cer", "rtfx")),
    paired="mmeval.tasks.speech_recognition.samples:paired_values",
    perturbs=("audio",),
)

"""CMU PocketSphinx as a `speech_recognizer`: the one real pretrained speech model mmeval runs offline.

The PyPI wheel ships a US-English acoustic model, the CMU pronouncing dictionary and a general 3-gram language
model; a config may instead give a JSGF grammar (`grammar`: only sentences of the grammar can be recognised) or
another language model / dictionary / acoustic model. Each clip is decoded as one whole utterance with batch
cepstral mean normalisation (`cmn: batch`), so a transcript never depends on the clips decoded before it (the
default live CMN carries its estimate from one utterance to the next). Clips arrive as float waveforms at 16 kHz
and are converted to 16-bit PCM, the input PocketSphinx takes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from mmeval.errors import ModelLoadError
from mmeval.models.base import GenerationSettings, ModelInfo, sha256_of_path

SAMPLE_RATE = 16000  # the shipped acoustic model's rate


class PocketSphinx:
    """A PocketSphinx decoder (capability `speech_recognizer`); runs on the CPU, one clip at a time."""

    capabilities = ("speech_recognizer",)
    sample_rate = SAMPLE_RATE

    def __init__(self, decoder, info: ModelInfo):
        self.decoder, self.info = decoder, info
        self.module = torch.nn.Module()  # no torch weights: the engine's device and precision do not apply

    def transcribe(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]:
        out = []
        for row, n in zip(audio, lengths):
            pcm = np.clip(row[: int(n)].float().cpu().numpy(), -1.0, 1.0 - 1 / 32768) * 32768
            self.decoder.start_utt()
            self.decoder.process_raw(pcm.astype("<i2").tobytes(), no_search=False, full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
            out.append(hyp.hypstr.strip() if hyp is not None else "")
        return out


def _existing(value: Path | None, field: str, kind: str) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not (path.is_dir() if kind == "folder" else path.is_file()):
        raise ModelLoadError(f"model.{field}: {kind} not found: {path}")
    return str(path)


def load(cfg, trust_checkpoint: bool = False) -> PocketSphinx:
    """Registry entry point (`model.type: pocketsphinx`; fields grammar, lm, dictionary, acoustic_model)."""
    try:
        import pocketsphinx
    except ImportError as exc:
        raise ModelLoadError("model.type pocketsphinx needs the pocketsphinx package: pip install 'mmeval[audio]'") from exc
    if cfg.grammar is not None and cfg.lm is not None:
        raise ModelLoadError("model: set grammar (a JSGF file) or lm (a language model), not both")
    models = Path(pocketsphinx.get_model_path())
    hmm = _existing(cfg.acoustic_model, "acoustic_model", "folder") or str(models / "en-us" / "en-us")
    dictionary = _existing(cfg.dictionary, "dictionary", "file") or str(models / "en-us" / "cmudict-en-us.dict")
    grammar = _existing(cfg.grammar, "grammar", "file")
    lm = _existing(cfg.lm, "lm", "file") or (None if grammar else str(models / "en-us" / "en-us.lm.bin"))
    options = {"hmm": hmm, "dict": dictionary, "samprate": SAMPLE_RATE, "cmn": "batch", "loglevel": "FATAL"}
    options.update({"jsgf": grammar} if grammar else {"lm": lm})
    try:
        decoder = pocketsphinx.Decoder(**options)
    except (RuntimeError, ValueError) as exc:
        what = f"the grammar {grammar}" if grammar else f"the language model {lm}"
        raise ModelLoadError(f"model: PocketSphinx could not load {what} with {dictionary} ({exc}); check the "
                             "file's format and that every word is in the dictionary") from exc  # fmt: skip
    digest = hashlib.sha256()
    for part in (hmm, dictionary, grammar or lm):
        digest.update(sha256_of_path(Path(part)).encode())
    version = getattr(pocketsphinx, "__version__", None)
    if version is None:
        from importlib.metadata import version as installed

        version = installed("pocketsphinx")
    name = cfg.name or ("pocketsphinx-jsgf-" + Path(grammar).stem if grammar else "pocketsphinx-" + Path(lm).stem)
    info = ModelInfo("pocketsphinx", name, grammar or lm, digest.hexdigest(), 0,
                     {"pocketsphinx": version, "acoustic_model": hmm, "dictionary": dictionary,
                      "search": "jsgf" if grammar else "ngram", "grammar": grammar, "lm": lm, "cmn": "batch"},
                     loaded_with="pocketsphinx.Decoder")  # fmt: skip
    return PocketSphinx(decoder, info)

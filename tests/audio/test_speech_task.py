"""Speech formats, PocketSphinx (the real shipped US-English model) and the speech_recognition task end to end.

Metrics are checked against jiwer run on the report's own per-utterance rows; PocketSphinx with the spoken set's
JSGF grammar must recognise clean US-English clips exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import jiwer
import numpy as np
import pytest
import soundfile as sf

from mmeval.config.audio import AudioSettings
from mmeval.config.data import DataConfig
from mmeval.config.model import ModelConfig
from mmeval.config.run import RuntimeConfig
from mmeval.data.speech_formats import SPOKEN_SHAPES, load_hf_speech, load_librispeech, load_nemo, load_spoken_shapes
from mmeval.engine.runtime import resolve_runtime
from mmeval.errors import DataError, ModelLoadError
from mmeval.metrics.text_norm import basic
from mmeval.models.pocketsphinx_adapter import load as load_pocketsphinx
from mmeval.tasks.base import RunContext
from mmeval.tasks.speech_recognition.config import SpeechRecognitionConfig
from mmeval.tasks.speech_recognition.run import run

GRAMMAR = SPOKEN_SHAPES / "shapes.jsgf"


def spoken_rows(voice: str | None = None, n: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (SPOKEN_SHAPES / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if voice is None or r["voice"] == voice]
    return rows[:n] if n else rows


def test_spoken_shapes_set_links_questions_to_images() -> None:
    data = load_spoken_shapes(DataConfig(format="spoken_shapes"))
    assert len(data.ids) == 200 and len(set(data.ids)) == 200
    assert data.texts[0] == "is there a blue circle?" and data.speakers[0] == "en-gb-x-rp"
    first = data.attributes["spoken-0000"]
    assert first["image_id"] == "test-000000" and first["answer"] == "yes" and first["kind"] == "question"
    assert sum(a["kind"] == "command" for a in data.attributes.values()) == 50
    assert all(p.exists() and p.suffix == ".flac" for p in data.audio.paths)
    assert sum(p.stat().st_size for p in data.audio.paths) < 5_000_000  # the shipped set stays small
    info = sf.info(data.audio.paths[0])
    assert (info.samplerate, info.channels) == (16000, 1)


def test_librispeech_nemo_and_hf_formats(tmp_path: Path) -> None:
    chapter = tmp_path / "libri" / "19" / "198"
    chapter.mkdir(parents=True)
    (chapter / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 THIS LITTLE WORK\n")
    for clip in ("19-198-0000", "19-198-0001"):
        sf.write(chapter / f"{clip}.flac", np.zeros(1600, np.float32), 16000)
    libri = load_librispeech(DataConfig(format="librispeech", root=tmp_path / "libri"))
    assert libri.ids == ["19-198-0000", "19-198-0001"] and libri.texts == ["NORTHANGER ABBEY", "THIS LITTLE WORK"]
    assert libri.speakers == ["19", "19"] and libri.audio.paths[1] == chapter / "19-198-0001.flac"

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": "libri/19/198/19-198-0000.flac", "text": "hi", "duration": 0.1,
                                    "speaker": 7, "lang": "en"}) + "\n")  # fmt: skip
    nemo = load_nemo(DataConfig(format="nemo", annotations=manifest))
    assert nemo.audio.paths == [chapter / "19-198-0000.flac"] and nemo.speakers == ["7"]
    assert nemo.attributes == {"19-198-0000": {"duration": 0.1, "lang": "en"}}
    manifest.write_text('{"audio_filepath": "x.wav"}\n')
    with pytest.raises(DataError, match=r"m.jsonl:1: each line needs a string 'audio_filepath' and a string 'text'"):
        load_nemo(DataConfig(format="nemo", annotations=manifest))

    dataset = datasets.Dataset.from_dict({"audio": [str(p) for p in libri.audio.paths], "text": libri.texts})
    dataset.cast_column("audio", datasets.Audio()).save_to_disk(tmp_path / "hf")
    hf = load_hf_speech(DataConfig(format="hf_speech", path=str(tmp_path / "hf")))
    assert hf.texts == libri.texts and hf.ids == ["0", "1"]
    assert [len(hf.audio.read(i)) for i in range(2)] == [p.stat().st_size for p in libri.audio.paths]
    with pytest.raises(DataError, match="data.text_column 'words' is not a column"):
        load_hf_speech(DataConfig(format="hf_speech", path=str(tmp_path / "hf"), text_column="words"))


def _runtime(batch_size: int = 4):
    return resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=batch_size, num_workers=0))


def test_pocketsphinx_grammar_recognises_clean_us_english_clips_batch_independently() -> None:
    model = load_pocketsphinx(ModelConfig(type="pocketsphinx", grammar=GRAMMAR))
    assert model.info.extra["search"] == "jsgf" and model.info.sha256 and model.sample_rate == 16000
    rows = spoken_rows("en-us", 6)
    from mmeval.io.audio import read_audio
    from mmeval.io.audio_loading import pad
    from mmeval.models.base import GenerationSettings

    waves = [read_audio(SPOKEN_SHAPES / r["audio_filepath"], AudioSettings(), 16000).samples for r in rows]
    audio, lengths = pad(waves)
    together = model.transcribe(audio, lengths, GenerationSettings())
    alone = [model.transcribe(audio[i : i + 1], lengths[i : i + 1], GenerationSettings())[0] for i in range(6)]
    assert together == alone
    expected = [basic(r["text"]).replace("colour", "color") for r in rows]  # one pronunciation in the dictionary
    assert [basic(t) for t in together[:5]] == expected[:5]
    assert together[5] == ""  # "is there a purple star" (pitch 62, 190 wpm): the search reaches no sentence end


def test_pocketsphinx_refuses_both_grammar_and_lm(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="set grammar .* or lm .*, not both"):
        load_pocketsphinx(ModelConfig(type="pocketsphinx", grammar=GRAMMAR, lm=GRAMMAR))
    bad = tmp_path / "bad.jsgf"
    bad.write_text("#JSGF V1.0;\ngrammar g;\npublic <a> = zzqxv blorp;\n")
    with pytest.raises(ModelLoadError, match="PocketSphinx could not load the grammar"):
        load_pocketsphinx(ModelConfig(type="pocketsphinx", grammar=bad))


def test_speech_recognition_task_matches_jiwer_on_its_own_rows(tmp_path: Path) -> None:
    rows = spoken_rows("en-us", 5) + spoken_rows("en-gb", 3)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio_filepath": str(SPOKEN_SHAPES / r["audio_filepath"])}) + "\n"
                                for r in rows) + json.dumps({"audio_filepath": "gone.flac", "text": "x"}) + "\n")  # fmt: skip
    bench = SpeechRecognitionConfig(name="asr", task="speech_recognition",
                                    data={"format": "nemo", "annotations": manifest, "on_bad_input": "skip"},
                                    normalizers=["basic", "none"])  # fmt: skip
    model = load_pocketsphinx(ModelConfig(type="pocketsphinx", grammar=GRAMMAR))
    result = run(model, bench, RunContext(_runtime()))
    assert result.dataset["n_clips"] == 8 and result.dataset["n_skipped_clips"] == 1
    assert result.dataset["skipped_clips"][0]["reason"].endswith("gone.flac: file not found")
    utterances = result.per_sample["utterances"]
    refs = [basic(u["reference"]) for u in utterances]
    hyps = [basic(u["hypothesis"]) for u in utterances]
    assert result.metrics["wer"]["value"] == pytest.approx(jiwer.wer(refs, hyps))
    assert result.metrics["cer"]["value"] == pytest.approx(jiwer.cer(refs, hyps))
    words = jiwer.process_words(refs, hyps)
    errors = result.extra["errors"]["wer"]
    assert (errors["substitutions"], errors["deletions"], errors["insertions"]) == \
        (words.substitutions, words.deletions, words.insertions)  # fmt: skip
    raw_refs = [" ".join(u["reference"].split()) for u in utterances]
    raw_hyps = [" ".join(u["hypothesis"].split()) for u in utterances]
    assert result.metrics["wer_none"]["value"] == pytest.approx(jiwer.wer(raw_refs, raw_hyps))
    assert [u["wer"] for u in utterances] == pytest.approx([jiwer.wer(r, h) for r, h in zip(refs, hyps)])
    assert result.metrics["rtfx"]["value"] > 0 and result.dataset["audio_seconds"] == pytest.approx(
        sum(r["duration"] for r in rows), abs=0.01)  # fmt: skip
    speakers = result.extra["by_speaker"]
    assert set(speakers) == {"en-us", "en-gb"} and speakers["en-us"]["n"] == 5
    assert speakers["en-us"]["wer"] == pytest.approx(jiwer.wer(refs[:5], hyps[:5]))  # colour -> color: 1 substitution
    assert speakers["en-gb"]["wer"] == pytest.approx(jiwer.wer(refs[5:], hyps[5:]))
    assert speakers["en-gb"]["wer"] > speakers["en-us"]["wer"]  # the acoustic model is US English
    assert result.dataset["decoder"]["resampler"].startswith("soxr_hq") and result.extra["normalizers"]["basic"]
    assert result.metrics["wer"]["ci95"][0] <= result.metrics["wer"]["value"] <= result.metrics["wer"]["ci95"][1]


@pytest.mark.parametrize("n_speakers", [12, 4])
def test_speech_intervals_resample_speakers_only_when_there_are_enough(tmp_path: Path, n_speakers: int) -> None:
    """The bootstrap resamples speakers (the paired test's unit) with >= MIN_SPEAKERS named, utterances below:
    a percentile bootstrap over a handful of clusters is unreliable."""
    from mmeval.tasks.speech_recognition.samples import MIN_SPEAKERS

    rows = spoken_rows("en-us", 12)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio_filepath": str(SPOKEN_SHAPES / r["audio_filepath"]),
                                            "speaker": f"s{n % n_speakers}"}) + "\n" for n, r in enumerate(rows)))  # fmt: skip
    bench = SpeechRecognitionConfig(name="asr", task="speech_recognition", data={"format": "nemo", "annotations": manifest})
    result = run(load_pocketsphinx(ModelConfig(type="pocketsphinx", grammar=GRAMMAR)), bench, RunContext(_runtime()))
    block = result.extra["bootstrap"]
    if n_speakers >= MIN_SPEAKERS:
        assert block["resampled"] == "clusters" and block["unit"].startswith("speakers")
    else:
        assert block["resampled"] == "rows" and block["unit"] == "utterances"
    low, high = result.metrics["wer"]["ci95"]
    assert low <= result.metrics["wer"]["value"] <= high

"""The direct group decoding (io/audio_direct.py) against the general path (`_Reader.decoded_group`: decode_native
per clip, then one stream per rate): the same batches bit for bit, and a fall-back to the general path for
anything unusual, whose messages the fault suite checks."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmeval.config.audio import AudioSettings
from mmeval.data.speech_formats import SPOKEN_SHAPES
from mmeval.io.audio_direct import decode_group
from mmeval.io.audio_loading import AudioSource, _Reader


def _mixed_files(folder: Path) -> list[Path]:
    """Shipped 16 kHz mono FLAC speech, with a 44.1 kHz 24-bit stereo WAV, an 8 kHz float WAV and a 22.05 kHz
    OGG among them: three native rates and a mixdown in one group."""
    rng = np.random.default_rng(5)
    stereo = (rng.standard_normal((30001, 2)) * 0.2).astype(np.float32)
    sf.write(folder / "stereo.wav", stereo, 44100, subtype="PCM_24")
    sf.write(folder / "float.wav", stereo[:9000, 0], 8000, subtype="FLOAT")
    sf.write(folder / "clip.ogg", stereo[:20000, 1], 22050)
    shipped = [SPOKEN_SHAPES / f"{n:04d}.flac" for n in range(0, 60, 5)]
    return [*shipped[:3], folder / "stereo.wav", *shipped[3:6], folder / "float.wav", folder / "clip.ogg", *shipped[6:]]


def _general(paths: list[Path], batches: list[list[int]], settings: AudioSettings, rate: int) -> list:
    return _Reader(AudioSource(paths), settings, rate, None).decoded_group(batches)


@pytest.mark.parametrize("rate", [16000, 22050, 48000])
@pytest.mark.parametrize("settings", [AudioSettings(), AudioSettings(max_seconds=1.0, on_too_long="truncate")],
                         ids=["whole", "truncated"])  # fmt: skip
def test_direct_batches_equal_the_general_paths_bit_for_bit(tmp_path: Path, rate: int, settings) -> None:
    paths = _mixed_files(tmp_path)
    batches = [list(range(4)), list(range(4, 11)), list(range(11, len(paths)))]
    for _ in range(2):  # the second time through, the thread's decoding buffer is reused
        direct = decode_group(paths, batches, settings, rate)
        general = _general(paths, batches, settings, rate)
        assert direct is not None and len(direct) == len(general) == 3
        for (found, batch, lengths, rows), (findings, general_rows, (audio, general_lengths)) in zip(direct, general):
            assert found == [(index, digest) for index, digest, error, _ in findings if error is None]
            assert len(found) == len(findings)  # every clip plain: nothing left out
            np.testing.assert_array_equal(batch, audio.numpy())
            np.testing.assert_array_equal(lengths, general_lengths.numpy())
            assert [len(r) for r in rows] == [len(r) for r in general_rows]


def test_a_clip_over_the_kept_buffer_size_gets_its_own_array(tmp_path: Path, monkeypatch) -> None:
    import mmeval.io.audio_direct as direct

    paths = _mixed_files(tmp_path)
    want = decode_group(paths, [[0, 3, 7]], AudioSettings(), 22050)[0][1]
    monkeypatch.setattr(direct, "_KEPT_SAMPLES", 1000)  # every clip is "long" now
    monkeypatch.setattr(direct, "_scratch", threading.local())
    np.testing.assert_array_equal(decode_group(paths, [[0, 3, 7]], AudioSettings(), 22050)[0][1], want)
    assert getattr(direct._scratch, "buffer", None) is None  # nothing kept by the thread


def test_a_lone_clip_and_the_models_own_rate_are_decoded_as_alone(tmp_path: Path) -> None:
    paths = _mixed_files(tmp_path)
    for rate in (16000, 22050):
        direct = decode_group(paths, [[3]], AudioSettings(), rate)
        np.testing.assert_array_equal(direct[0][1], _general(paths, [[3]], AudioSettings(), rate)[0][2][0].numpy())
        mono_at_rate = decode_group(paths, [[0, 1]], AudioSettings(), 16000)[0][1]  # FLAC read into its row
        want = [sf.read(paths[i], dtype="float32")[0] for i in (0, 1)]
        np.testing.assert_array_equal(mono_at_rate[0, : len(want[0])], want[0])
        np.testing.assert_array_equal(mono_at_rate[1, : len(want[1])], want[1])
        assert not mono_at_rate[0, len(want[0]) :].any() and not mono_at_rate[1, len(want[1]) :].any()


def test_anything_unusual_in_a_group_falls_back_to_the_general_path(tmp_path: Path) -> None:
    good = SPOKEN_SHAPES / "0000.flac"
    data = good.read_bytes()
    (tmp_path / "truncated.flac").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.flac").write_bytes(b"not audio" * 50)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, subtype="FLOAT")
    sf.write(tmp_path / "silent.wav", np.zeros(0, np.float32), 16000)
    sf.write(tmp_path / "long.wav", np.zeros(48000, np.float32), 16000)
    (tmp_path / "clip.mp3").write_bytes(data)  # not a libsndfile suffix: PyAV's path
    unusual = ["truncated.flac", "garbage.flac", "empty.wav", "nan.wav", "silent.wav", "missing.flac", "clip.mp3"]
    for name in unusual:
        assert decode_group([good, tmp_path / name], [[0, 1]], AudioSettings(), 22050) is None, name
    too_long = AudioSettings(max_seconds=2.0, on_too_long="skip")
    assert decode_group([good, tmp_path / "long.wav"], [[0, 1]], too_long, 22050) is None
    for fine in (AudioSettings(max_seconds=2.0, on_too_long="truncate"), AudioSettings(max_seconds=5.0)):
        assert decode_group([good, tmp_path / "long.wav"], [[0, 1]], fine, 22050) is not None
    # through the reader, such a group gets the general path's findings: the fault named, the good clip kept
    reader = _Reader(AudioSource([good, tmp_path / "nan.wav"]), AudioSettings(), 22050, None)
    findings, rows, _ = reader.group([[0, 1]])[0]
    named = f"{tmp_path / 'nan.wav'}: NaN or Inf samples"
    assert [(index, error) for index, _, error, _ in findings] == [(0, None), (1, named)]
    assert len(rows) == 1

"""Audio decoding and the audio batch loader: formats, downmix and resampling against independent references
(an analytic sine, scipy's polyphase resampler, a per-file loop), bad clips named, the decoded-input cache."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

from mmeval.config.audio import AudioSettings
from mmeval.config.run import RuntimeConfig
from mmeval.engine.audio_passes import transcribe
from mmeval.engine.runtime import resolve_runtime
from mmeval.engine.timing import Timer
from mmeval.errors import DataError
from mmeval.io.audio import ClipTooLong, describe_decoder, read_audio
from mmeval.io.audio_loading import AudioBatches, AudioSource
from mmeval.models.base import GenerationSettings, ModelInfo


def tone(rate: int, seconds: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t)
    return np.stack([wave * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def encode_av(path: Path, codec: str, rate: int = 22050, seconds: float = 1.0) -> Path:
    """A 440 Hz tone compressed by FFmpeg's encoder `codec` (mp3 / aac) through PyAV."""
    samples = tone(rate, seconds)[:, 0]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def test_stereo_44k_wav_is_averaged_and_resampled_like_an_independent_reference(tmp_path: Path) -> None:
    stereo = tone(44100, 1.0, channels=2)
    sf.write(tmp_path / "a.wav", stereo, 44100, subtype="FLOAT")
    audio = read_audio(tmp_path / "a.wav", AudioSettings(), 16000)
    assert audio.rate == 16000 and audio.samples.dtype == np.float32 and audio.samples.shape == (16000,)
    assert audio.info == {"original_rate": 44100, "channels": 2, "duration_s": 1.0, "codec": "WAV/FLOAT"}
    mono = stereo.mean(axis=1).astype(np.float64)
    analytic = 0.3 * 0.9 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    scipy_ref = resample_poly(mono, 160, 441)
    inner = slice(400, -400)  # away from the edges, where each resampler pads differently
    assert np.abs(audio.samples[inner] - analytic[inner]).max() < 2e-3
    assert np.abs(audio.samples[inner] - scipy_ref[inner]).max() < 2e-3


@pytest.mark.parametrize("name,codec", [("a.mp3", "libmp3lame"), ("a.m4a", "aac")])
def test_compressed_formats_decode_through_pyav(tmp_path: Path, name: str, codec: str) -> None:
    audio = read_audio(encode_av(tmp_path / name, codec), AudioSettings(), 16000)
    assert audio.rate == 16000 and audio.info["original_rate"] == 22050 and audio.info["channels"] == 1
    assert abs(len(audio.samples) / 16000 - 1.0) < 0.1  # encoder delay and padding: a few ms
    assert abs(peak_hz(audio.samples, 16000) - 440) < 3


def test_flac_and_ogg_through_soundfile_at_the_model_rate_are_not_resampled(tmp_path: Path) -> None:
    wave = tone(16000, 0.5)
    sf.write(tmp_path / "a.flac", wave, 16000, subtype="PCM_16")
    audio = read_audio(tmp_path / "a.flac", AudioSettings(), 16000)
    np.testing.assert_allclose(audio.samples, wave[:, 0], atol=1 / 32768)  # only 16-bit quantisation
    sf.write(tmp_path / "a.ogg", wave, 16000, format="OGG", subtype="VORBIS")
    assert abs(peak_hz(read_audio(tmp_path / "a.ogg", AudioSettings(), 16000).samples, 16000) - 440) < 3
    fixed = read_audio(tmp_path / "a.flac", AudioSettings(sample_rate=8000), 16000)  # settings win over the model
    assert fixed.rate == 8000 and len(fixed.samples) == 4000


def _wav_with_rate(path: Path, rate: int) -> Path:
    sf.write(path, tone(16000, 0.2), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = rate.to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(data))
    return path


def bad_clips(folder: Path) -> dict[str, str]:
    """file name -> the start of the reason it is refused."""
    sf.write(folder / "ok.wav", tone(16000, 0.5), 16000)
    whole = (folder / "ok.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    sf.write(folder / "ok.flac", tone(16000, 0.5), 16000)
    (folder / "truncated.flac").write_bytes((folder / "ok.flac").read_bytes()[:3000])
    (folder / "empty.wav").write_bytes(b"")
    (folder / "garbage.flac").write_bytes(b"not audio at all" * 10)
    sf.write(folder / "zero.wav", np.zeros((0, 1), np.float32), 16000)
    _wav_with_rate(folder / "rate0.wav", 0)
    _wav_with_rate(folder / "rate5.wav", 5)
    sf.write(folder / "nan.wav", np.full((100, 1), np.nan, np.float32), 16000, subtype="FLOAT")
    return {"truncated.wav": "truncated audio (the data chunk declares", "truncated.flac": "cannot decode audio",
            "empty.wav": "empty file (0 bytes)", "garbage.flac": "cannot decode audio",
            "zero.wav": "no audio samples (zero-length clip)", "rate0.wav": "implausible sample rate 0 Hz",
            "rate5.wav": "implausible sample rate 5 Hz", "nan.wav": "NaN or Inf samples",
            "missing.wav": "file not found"}  # fmt: skip


def test_bad_clips_raise_a_data_error_naming_the_file(tmp_path: Path) -> None:
    for name, reason in bad_clips(tmp_path).items():
        with pytest.raises(DataError) as error:
            read_audio(tmp_path / name, AudioSettings(), 16000)
        assert str(error.value).startswith(f"{tmp_path / name}: {reason}"), (name, str(error.value))


def test_clips_over_the_limit_are_truncated_or_refused(tmp_path: Path) -> None:
    sf.write(tmp_path / "long.wav", tone(16000, 2.0), 16000)
    cut = read_audio(tmp_path / "long.wav", AudioSettings(max_seconds=0.5, on_too_long="truncate"), 16000)
    assert len(cut.samples) == 8000 and cut.info["truncated_to_s"] == 0.5 and cut.info["duration_s"] == 2.0
    for choice in ("skip", "fail"):
        with pytest.raises(ClipTooLong, match=r"long.wav: clip is 2.00 s, over audio.max_seconds = 0.5"):
            read_audio(tmp_path / "long.wav", AudioSettings(max_seconds=0.5, on_too_long=choice), 16000)
    assert len(read_audio(tmp_path / "long.wav", AudioSettings(max_seconds=2.0), 16000).samples) == 32000


def test_describe_decoder_names_libraries_and_the_resampler() -> None:
    described = describe_decoder(AudioSettings(resampler="soxr_vhq"))
    assert described["soundfile"] == sf.__version__ and described["av"] == av.__version__
    assert described["resampler"].startswith("soxr_vhq (soxr ") and "VHQ" in described["resampler"]


class LengthModel:
    """A speech recognizer that reports what it was given: each clip's length and first samples."""

    sample_rate = 16000
    info = ModelInfo("test", "lengths", None, "sha-lengths", 0)
    module = torch.nn.Module()

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def transcribe(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]:
        self.calls.append(tuple(audio.shape))
        assert all(float(row[n:].abs().sum()) == 0 for row, n in zip(audio, lengths))  # zero padding
        return [f"{int(n)} {row[:3].tolist()}" for row, n in zip(audio, lengths)]


def _runtime(batch_size: int = 3, workers: int = 0):
    return resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=batch_size,
                                         num_workers=workers))  # fmt: skip


def test_batches_are_padded_with_lengths_and_bad_clips_are_named_by_index(tmp_path: Path) -> None:
    rates = [8000, 16000, 22050, 44100]
    paths = []
    for n, rate in enumerate(rates):
        sf.write(tmp_path / f"c{n}.wav", tone(rate, 0.25 + 0.1 * n, freq=300 + 100 * n), rate, subtype="FLOAT")
        paths.append(tmp_path / f"c{n}.wav")
    bad_clips(tmp_path)
    source = AudioSource(paths[:2] + [tmp_path / "truncated.wav"] + paths[2:] + [tmp_path / "missing.wav"])
    loader = AudioBatches(source, _runtime(), AudioSettings(), 16000, "skip")
    batches = list(loader.batches(loader.order(), Timer()))
    assert [b.indices for b in batches] == [[0, 1], [3, 4]]
    assert [i for b in batches for i, _ in b.bad] == [2, 5]
    assert "truncated audio" in batches[0].bad[0][1] and batches[1].bad[0][1].endswith("missing.wav: file not found")
    expected = [read_audio(p, AudioSettings(), 16000).samples for p in paths]  # the per-file loop
    rows = [(b.inputs["audio"][r], b.inputs["lengths"][r]) for b in batches for r in range(len(b.indices))]
    for (row, n), want in zip(rows, expected):
        assert int(n) == len(want)
        np.testing.assert_array_equal(row[: int(n)].numpy(), want)


def test_transcribe_pass_uses_the_decoded_cache_and_the_output_cache(tmp_path: Path, own_cache: Path) -> None:
    paths = []
    for n in range(5):
        sf.write(tmp_path / f"c{n}.flac", tone(22050, 0.2 + 0.05 * n, freq=200 * (n + 1)), 22050)
        paths.append(tmp_path / f"c{n}.flac")
    source, settings = AudioSource(paths), AudioSettings()
    run = _runtime(batch_size=2)
    model = LengthModel()
    first, done = transcribe(model, source, run, settings, GenerationSettings(), "skip", lambda n: None)
    assert done.decoded_from_cache == 0 and done.ok_indices == [0, 1, 2, 3, 4] and model.calls[0][0] == 2
    assert [s for _, s in first] == pytest.approx([len(read_audio(p, settings, 16000).samples) / 16000 for p in paths])
    assert done.decoder["rate"] == 16000 and done.decoder["resampler"].startswith("soxr_hq")
    other = LengthModel()
    other.info = ModelInfo("test", "other", None, "sha-other", 0)  # another model: decoded clips come from the cache
    second, again = transcribe(other, source, run, settings, GenerationSettings(), "skip", lambda n: None)
    assert again.decoded_from_cache == 5 and second == first
    assert len(list((own_cache / "audio").rglob("*.float32"))) == 1  # one store for the whole source
    third_model = LengthModel()
    third, cached = transcribe(third_model, source, run, settings, GenerationSettings(), "skip", lambda n: None)
    assert cached.timer.cached and third_model.calls == [] and third == first


def test_on_bad_input_fail_stops_with_one_message_naming_the_clip(tmp_path: Path) -> None:
    bad_clips(tmp_path)
    source = AudioSource([tmp_path / "ok.wav", tmp_path / "garbage.flac"])
    with pytest.raises(DataError, match=r"garbage.flac: cannot decode audio .*set data.on_bad_input: skip"):
        transcribe(LengthModel(), source, _runtime(), AudioSettings(), GenerationSettings(), "fail", lambda n: None)
    sf.write(tmp_path / "long.wav", tone(16000, 2.0), 16000)
    too_long = AudioSettings(max_seconds=1.0, on_too_long="fail")
    with pytest.raises(ClipTooLong, match="long.wav: clip is 2.00 s"):  # fail stops the run even when skipping
        transcribe(LengthModel(), AudioSource([tmp_path / "long.wav"]), _runtime(), too_long, GenerationSettings(),
                   "skip", lambda n: None)  # fmt: skip

"""Resampling a batch of clips through one libsoxr stream (io/audio_resample.py) against one `soxr.resample` call
per clip (what librosa.load does) and against one call on the joined array built by hand, on shipped
spoken-shapes clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import soxr

from mmeval.data.speech_formats import SPOKEN_SHAPES
from mmeval.io.audio_resample import _gap, joins, output_length, resample_into, resample_joined

CLIPS = [sf.read(SPOKEN_SHAPES / f"{n:04d}.flac", dtype="float32")[0] for n in range(0, 40, 3)]


@pytest.mark.parametrize("rate_out", [8000, 11025, 22050, 44100, 48000])
@pytest.mark.parametrize("resampler", ["soxr_hq", "soxr_vhq"])
def test_joined_resampling_equals_one_call_per_clip_after_the_first_input_samples(rate_out: int, resampler: str) -> None:
    alone = [soxr.resample(clip, 16000, rate_out, quality=resampler[5:].upper()) for clip in CLIPS]
    joined = resample_joined(CLIPS, 16000, rate_out, resampler)
    assert [len(a) for a in joined] == [len(a) for a in alone]
    skip = math.ceil(3 * rate_out / 16000) + 1  # libsoxr's start-up on a lone clip's first 3 input samples
    for a, b in zip(joined, alone):
        assert float(np.abs(a[skip:] - b[skip:]).max()) < 1e-6
        assert float(np.abs(a[:skip] - b[:skip]).max()) < 1e-3
    # a clip's samples do not depend on its neighbours: the same clip alone in its own batch
    second = resample_joined([CLIPS[1], CLIPS[4]], 16000, rate_out, resampler)[0]
    assert float(np.abs(second - joined[1]).max()) < 1e-6


@pytest.mark.parametrize("rate_out", [11025, 22050, 44100])
def test_streamed_rows_equal_one_call_on_the_joined_array_built_by_hand(rate_out: int) -> None:
    """The stream fed piece by piece writes exactly the samples one `soxr.resample` call gives on the whole
    joined layout (clip starts on multiples of the ratio's denominator, silence between), into rows of a padded
    batch, leaving the padding alone."""
    g = math.gcd(16000, rate_out)
    up, down, gap = rate_out // g, 16000 // g, _gap(16000, rate_out, "soxr_hq")
    starts, at = [], -(-gap // down) * down
    for clip in CLIPS:
        starts.append(at)
        at += -(-(len(clip) + gap) // down) * down
    joined = np.zeros(at, np.float32)
    for start, clip in zip(starts, CLIPS):
        joined[start : start + len(clip)] = clip
    whole = soxr.resample(joined, 16000, rate_out, quality="HQ")
    lengths = [output_length(len(clip), 16000, rate_out) for clip in CLIPS]
    batch = np.full((len(CLIPS), max(lengths) + 5), -7.0, np.float32)
    resample_into(CLIPS, 16000, rate_out, "soxr_hq", [batch[r, :n] for r, n in enumerate(lengths)])
    for row, start, n in zip(batch, starts, lengths):
        np.testing.assert_array_equal(row[:n], whole[start // down * up : start // down * up + n])
        assert (row[n:] == -7.0).all()
    with pytest.raises(ValueError, match="a row of"):
        resample_into(CLIPS[:2], 16000, rate_out, "soxr_hq", [batch[0, :3], batch[1, :3]])


@pytest.mark.parametrize(("rate", "rate_out"), [(16000, 48000), (16000, 8000), (16000, 32000), (16000, 24000)])
def test_small_ratios_are_resampled_one_call_per_clip_as_librosa_does(rate: int, rate_out: int) -> None:
    """Where libsoxr's set-up is cheap (a reduced ratio of small terms) joining saves nothing: each row is exactly
    one plain call on its clip."""
    assert not joins(rate, rate_out) and joins(16000, 22050) and joins(44100, 16000) and not joins(rate, rate)
    lengths = [output_length(len(clip), rate, rate_out) for clip in CLIPS]
    batch = np.zeros((len(CLIPS), max(lengths)), np.float32)
    resample_into(CLIPS, rate, rate_out, "soxr_hq", [batch[r, :n] for r, n in enumerate(lengths)])
    for row, clip, n in zip(batch, CLIPS, lengths):
        np.testing.assert_array_equal(row[:n], soxr.resample(clip, rate, rate_out, quality="HQ"))


def test_output_length_is_libsoxrs() -> None:
    rng = np.random.default_rng(0)
    for rate, rate_out in ((16000, 22050), (16000, 8000), (44100, 16000), (48000, 16000), (11025, 16000)):
        for n in [*range(1, 50), *rng.integers(1, 100_000, 30).tolist()]:
            assert output_length(n, rate, rate_out) == len(soxr.resample(np.zeros(n, np.float32), rate, rate_out))


def test_one_clip_or_matching_rates_are_passed_through_unjoined() -> None:
    np.testing.assert_array_equal(resample_joined(CLIPS[:1], 16000, 22050, "soxr_hq")[0],
                                  soxr.resample(CLIPS[0], 16000, 22050, quality="HQ"))  # fmt: skip
    assert resample_joined(CLIPS[:2], 16000, 16000, "soxr_hq")[1] is CLIPS[1]


def test_threaded_loader_names_an_undecodable_file_once_and_stops_cleanly(tmp_path) -> None:
    import threading

    from mmeval.config.audio import AudioSettings
    from mmeval.config.run import RuntimeConfig
    from mmeval.engine.runtime import resolve_runtime
    from mmeval.engine.timing import Timer
    from mmeval.errors import DataError
    from mmeval.io.audio_loading import AudioBatches, AudioSource

    paths = [SPOKEN_SHAPES / f"{n:04d}.flac" for n in range(12)]
    (tmp_path / "bad.flac").write_bytes(b"garbage" * 10)
    paths.insert(6, tmp_path / "bad.flac")
    runtime = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=2, num_workers=2))
    runtime.cache = None
    before = threading.active_count()
    loader = AudioBatches(AudioSource(paths), runtime, AudioSettings(), 22050, "fail")
    with pytest.raises(DataError) as raised:
        list(loader.batches(loader.order(), Timer()))
    assert str(raised.value).count("bad.flac") == 1 and "Format not recognised" in str(raised.value)
    assert threading.active_count() == before  # the decoding threads are gone
    loader = AudioBatches(AudioSource(paths), runtime, AudioSettings(), 22050, "skip")
    batches = list(loader.batches(loader.order(), Timer()))
    assert [i for b in batches for i in b.indices] == [i for i in range(13) if i != 6]
    assert [i for b in batches for i, _ in b.bad] == [6]

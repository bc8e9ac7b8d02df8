"""The direct libsndfile read (io/sndfile_direct.py) against `soundfile.read`, and its fall-backs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from mmeval.data.speech_formats import SPOKEN_SHAPES
from mmeval.io.sndfile_direct import read_frames


def test_samples_and_header_equal_soundfiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    stereo = (rng.standard_normal((3001, 2)) * 0.3).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", stereo, 44100, subtype="PCM_24")
    sf.write(tmp_path / "float.wav", stereo[:, 0], 8000, subtype="FLOAT")
    sf.write(tmp_path / "clip.ogg", stereo[:, 1], 22050)
    for path in [SPOKEN_SHAPES / "0000.flac", SPOKEN_SHAPES / "0107.flac", *sorted(tmp_path.iterdir())]:
        direct = read_frames(path)
        want, rate = sf.read(path, dtype="float32", always_2d=True)
        info = sf.info(path)
        np.testing.assert_array_equal(direct.samples, want)
        assert (direct.rate, direct.declared_frames) == (rate, info.frames)
        assert (direct.format, direct.subtype) == (info.format, info.subtype)
    cut = read_frames(tmp_path / "stereo.wav", lambda rate: rate // 100)  # at most 10 ms
    np.testing.assert_array_equal(cut.samples, sf.read(tmp_path / "stereo.wav", dtype="float32")[0][:441])
    assert cut.declared_frames == 3001


def test_anything_unusual_returns_none_for_the_public_path_to_name(tmp_path: Path) -> None:
    (tmp_path / "garbage.flac").write_bytes(b"not audio at all" * 20)
    data = (SPOKEN_SHAPES / "0000.flac").read_bytes()
    (tmp_path / "truncated.flac").write_bytes(data[: len(data) // 2])
    assert read_frames(tmp_path / "missing.wav") is None
    assert read_frames(tmp_path / "garbage.flac") is None
    assert read_frames(tmp_path / "truncated.flac") is None

"""The built-in synthetic audio-scene benchmark "shapes_audio": short clips of 1-4 sound events, five captions each.

Like the image shapes set (`mmeval.data.shapes`), everything is a pure function of (split, seed, index): a clip
is one kind of event (a steady tone, a rising or falling chirp, a band of noise, a rhythm of clicks) repeated
1-4 times, low or high in pitch, quiet or loud, over silence or a faint hiss. The waveforms are synthesised with
NumPy and written once as 16 kHz mono FLAC (soundfile) under `<mmeval cache>/shapes-audio/<digest>/`, so the
benchmark reads real audio files through the same decoder as any other audio data.

Captions are deliberately ambiguous across clips (many clips are "two loud high beeps"), so perfect recall is
impossible; every caption is true of its clip by construction.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmeval.data.audio_data import AudioCaptionData, AudioClassData, listing_digest
from mmeval.errors import DataError

SAMPLE_RATE = 16000
VERSION = "shapes-audio-v1"  # bump when the synthesis changes: it keys the FLAC folder
KINDS = ("tone", "chirp", "noise", "clicks")
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}
# The zero-shot classes ("sound"): the kind with its pitch (direction for chirps); count and loudness are other
# label columns.
SOUND_CLASSES = ("low tone", "high tone", "rising chirp", "falling chirp", "low noise burst", "high noise burst",
                 "low clicks", "high clicks")  # fmt: skip
COUNT_CLASSES = ("one sound", "two sounds", "three sounds", "four sounds")
LOUDNESS_CLASSES = ("quiet sounds", "loud sounds")
LABEL_COLUMNS = {"sound": SOUND_CLASSES, "count": COUNT_CLASSES, "loudness": LOUDNESS_CLASSES}

_AMPLITUDE = {"quiet": 0.12, "loud": 0.6}
_HISS = 0.02  # background noise amplitude


@dataclass(frozen=True)
class AudioScene:
    """One clip: what its events are, where they are and how it sounds."""

    kind: str  # KINDS
    pitch: str  # low | high
    direction: str  # rising | falling (chirps) | steady
    count: int  # 1-4 events
    loudness: str  # quiet | loud
    background: str  # silence | hiss
    duration: float  # seconds
    base_hz: float  # the event's (start) frequency
    starts: tuple[float, ...]  # event onsets in seconds
    event_s: float  # each event's length in seconds
    noise_seed: int

    @property
    def sound(self) -> str:
        """The zero-shot class name (an entry of SOUND_CLASSES)."""
        if self.kind == "chirp":
            return f"{self.direction} chirp"
        return (
            f"{self.pitch} {'noise burst' if self.kind == 'noise' else 'clicks' if self.kind == 'clicks' else 'tone'}"
        )


def _draw(rng: random.Random) -> AudioScene:
    kind = rng.choice(KINDS)
    pitch = rng.choice(("low", "high"))
    direction = rng.choice(("rising", "falling")) if kind == "chirp" else "steady"
    count = rng.choice((1, 2, 3, 4))
    duration = rng.choice((1.5, 1.75, 2.0, 2.25))
    event_s = round(rng.uniform(0.18, 0.3), 3)
    slot = duration / count  # one event per equal slot, jittered inside it
    starts = tuple(round(i * slot + rng.uniform(0.02, max(0.021, slot - event_s - 0.02)), 3) for i in range(count))
    high = (1000, 1600) if kind == "chirp" else (1300, 2600)  # a chirp sweeps over a factor of 3: below Nyquist
    base = rng.uniform(220, 420) if pitch == "low" else rng.uniform(*high)
    return AudioScene(kind, pitch, direction, count, rng.choice(("quiet", "loud")), rng.choice(("silence", "hiss")),
                      duration, round(base, 1), starts, event_s, rng.randrange(2**31))  # fmt: skip


def _owner(scene: AudioScene) -> int:
    """Which split (0, 1, 2) may hold this exact clip: a hash of its content."""
    return hashlib.blake2b(repr(scene).encode(), digest_size=8).digest()[0] % len(SPLIT_OFFSETS)


def split_scene(split: str, seed: int, index: int) -> AudioScene:
    """Clip `index` of a split: its own seed stream, redrawn until the content hash belongs to the split, so no
    identical clip is in two splits."""
    if split not in SPLIT_OFFSETS:
        raise DataError(f"unknown shapes_audio split '{split}'; choose one of: {', '.join(SPLIT_OFFSETS)}")
    offset = SPLIT_OFFSETS[split]
    rng = random.Random(f"audio-{seed * 10 + offset}-{index}")
    while True:
        scene = _draw(rng)
        if _owner(scene) == offset:
            return scene


# --- synthesis ------------------------------------------------------------------------------------------------


def _event(scene: AudioScene, rng: np.random.Generator) -> np.ndarray:
    """One event of the scene's kind, unit peak, with 10 ms fades (no clicks at the edges except for clicks)."""
    n = int(scene.event_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if scene.kind == "tone":
        wave = np.sin(2 * np.pi * scene.base_hz * t)
    elif scene.kind == "chirp":  # exponential sweep over a factor of 3, up or down
        f0, f1 = (
            (scene.base_hz, scene.base_hz * 3) if scene.direction == "rising" else (scene.base_hz * 3, scene.base_hz)
        )
        k = np.log(f1 / f0) / scene.event_s
        wave = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    elif scene.kind == "noise":  # white noise band-limited in the frequency domain around the pitch
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        lo, hi = (80, 700) if scene.pitch == "low" else (2500, 6000)
        spectrum[(freqs < lo) | (freqs > hi)] = 0
        wave = np.fft.irfft(spectrum, n)
    else:  # clicks: a rhythm of five 12 ms decaying pings
        wave = np.zeros(n)
        ping = np.sin(2 * np.pi * scene.base_hz * 2 * t[: int(0.012 * SAMPLE_RATE)])
        ping *= np.exp(-t[: len(ping)] / 0.003)
        for start in np.linspace(0, n - len(ping), 5).astype(int):
            wave[start : start + len(ping)] += ping
    fade = min(int(0.01 * SAMPLE_RATE), n // 2)
    if scene.kind != "clicks":
        ramp = np.linspace(0, 1, fade)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return wave / max(np.abs(wave).max(), 1e-9)


def synthesize(scene: AudioScene) -> np.ndarray:
    """The clip's waveform: float32 mono at SAMPLE_RATE, peak below 1."""
    rng = np.random.default_rng(scene.noise_seed)
    out = np.zeros(round(scene.duration * SAMPLE_RATE))
    if scene.background == "hiss":
        out += _HISS * rng.standard_normal(len(out))
    for start in scene.starts:
        event = _event(scene, rng) * _AMPLITUDE[scene.loudness]
        at = int(start * SAMPLE_RATE)
        out[at : at + len(event)] += event[: len(out) - at]
    return np.clip(out, -0.99, 0.99).astype(np.float32)


# --- captions -------------------------------------------------------------------------------------------------

_NOUNS = {  # kind -> (singular, plural) choices
    "tone": (("tone", "tones"), ("beep", "beeps"), ("note", "notes")),
    "chirp": (("chirp", "chirps"), ("sweep", "sweeps"), ("whistle", "whistles")),
    "noise": (("noise burst", "noise bursts"), ("burst of static", "bursts of static"), ("rush of noise", "rushes of noise")),
    "clicks": (("series of clicks", "series of clicks"), ("click pattern", "click patterns"), ("ticking rhythm", "ticking rhythms")),
}  # fmt: skip
_PITCH = {"low": ("low", "low-pitched", "deep"), "high": ("high", "high-pitched", "shrill")}
_DIRECTION = {"rising": ("rising", "upward", "ascending"), "falling": ("falling", "downward", "descending")}
_LOUD = {"quiet": ("quiet", "soft", "faint"), "loud": ("loud", "strong", "intense")}
_NUMBER = {1: "one", 2: "two", 3: "three", 4: "four"}
_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times"}
_BACKGROUND = {"silence": ("in silence", "against a silent background", "with nothing else audible"),
               "hiss": ("over a faint hiss", "with background hiss", "over steady static")}  # fmt: skip


def _quality(scene: AudioScene, rng: random.Random) -> str:
    """'deep' / 'rising' / 'rising high-pitched': what tells this clip's events apart."""
    pitch = rng.choice(_PITCH[scene.pitch])
    if scene.kind != "chirp":
        return pitch
    direction = rng.choice(_DIRECTION[scene.direction])
    return f"{direction} {pitch}" if rng.random() < 0.4 else direction


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun(scene: AudioScene, rng: random.Random, plural: bool) -> str:
    return rng.choice(_NOUNS[scene.kind])[1 if plural else 0]


def _t_count(s: AudioScene, rng: random.Random) -> str:
    words = f"{rng.choice(_LOUD[s.loudness])} {_quality(s, rng)} {_noun(s, rng, s.count > 1)}"
    return _article(words) if s.count == 1 else f"{_NUMBER[s.count]} {words}"


def _t_times(s: AudioScene, rng: random.Random) -> str:
    verb = rng.choice(("sounds", "plays", "is heard"))
    what = _article(f"{_quality(s, rng)} {_noun(s, rng, False)}")
    return f"{what} {verb} {_TIMES[s.count]}, {rng.choice(_LOUD[s.loudness])}ly"


def _t_background(s: AudioScene, rng: random.Random) -> str:
    lead = _article(_noun(s, rng, False)) if s.count == 1 else f"{_NUMBER[s.count]} {_noun(s, rng, True)}"
    return f"{lead}, {_quality(s, rng)} and {rng.choice(_LOUD[s.loudness])}, {rng.choice(_BACKGROUND[s.background])}"


def _t_hear(s: AudioScene, rng: random.Random) -> str:
    lead = rng.choice(("you can hear", "someone plays", "a recording of"))
    what = _t_count(s, rng)
    return f"{lead} {what} {rng.choice(_BACKGROUND[s.background])}"


def _t_repeat(s: AudioScene, rng: random.Random) -> str:
    noun = _noun(s, rng, False)
    if s.count == 1:
        return f"a single {_quality(s, rng)} {noun}, {rng.choice(_LOUD[s.loudness])}"
    return f"the same {rng.choice(_LOUD[s.loudness])} {_quality(s, rng)} {noun} repeats {_TIMES[s.count]}"


_TEMPLATES = (_t_count, _t_times, _t_background, _t_hear, _t_repeat)


def scene_captions(scene: AudioScene) -> list[str]:
    """Five captions, each true of the clip, each naming its kind, its pitch or direction and its count."""
    rng = random.Random(repr(scene))
    captions = [template(scene, rng) for template in _TEMPLATES]
    rng.shuffle(captions)
    return [c[0].upper() + c[1:] + "." for c in captions]


def scene_attributes(scene: AudioScene) -> dict[str, str | int]:
    """Per-clip annotations kept for bias slices (plain str / int values)."""
    return {"kind": scene.kind, "pitch": scene.pitch, "direction": scene.direction, "count": scene.count,
            "loudness": scene.loudness, "background": scene.background, "sound": scene.sound}  # fmt: skip


# --- files ----------------------------------------------------------------------------------------------------


def clip_files(
    split: str, n_clips: int, seed: int, folder: Path | None = None
) -> tuple[list[str], list[AudioScene], list[Path]]:
    """The ids, scenes and FLAC paths of the first `n_clips` of a split, written on first use (atomically: a
    folder is renamed into place once complete, so a crash never leaves half a set)."""
    import soundfile as sf

    if n_clips < 1:
        raise DataError(f"shapes_audio: n_clips must be at least 1, got {n_clips}")
    scenes = [split_scene(split, seed, i) for i in range(n_clips)]
    ids = [f"{split}-{i:06d}" for i in range(n_clips)]
    key = hashlib.sha256(f"{VERSION}|{split}|{seed}|{n_clips}".encode()).hexdigest()[:20]
    root = (folder or _cache_root()) / key
    paths = [root / f"{clip_id}.flac" for clip_id in ids]
    if not (root / "scenes.json").is_file():
        partial = root.with_name(f"{key}.partial-{os.getpid()}")
        partial.mkdir(parents=True, exist_ok=True)
        for clip_id, scene in zip(ids, scenes):
            sf.write(partial / f"{clip_id}.flac", synthesize(scene), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        (partial / "scenes.json").write_text(json.dumps([asdict(s) for s in scenes]))
        try:
            partial.rename(root)
        except OSError:  # another process finished first: its files are the same
            import shutil

            shutil.rmtree(partial, ignore_errors=True)
    return ids, scenes, paths


def _cache_root() -> Path:
    from mmeval.engine.cache import default_cache_dir  # imported here: the cache module imports torch

    return default_cache_dir() / "shapes-audio"


def _audio_source(paths: list[Path], ids: list[str]):
    from mmeval.io.audio_loading import AudioSource

    return AudioSource(paths=paths, ids=ids)


def load_shapes_audio(
    split: str = "test", n_clips: int = 400, seed: int = 0, folder: Path | None = None
) -> AudioCaptionData:
    """`n_clips` clips of one split with five captions each."""
    ids, scenes, paths = clip_files(split, n_clips, seed, folder)
    captions = [scene_captions(scene) for scene in scenes]
    return AudioCaptionData(
        audio=_audio_source(paths, ids), captions=captions, ids=ids,
        source=f"shapes_audio(split={split}, n={n_clips}, seed={seed})",
        annotation_digest=listing_digest(VERSION, ids, captions),
        attributes={i: scene_attributes(s) for i, s in zip(ids, scenes)},
        split_note=f"synthetic {split} split",
    )  # fmt: skip


def load_shapes_audio_classes(split: str = "test", n_clips: int = 400, seed: int = 0, label_column: str = "sound",
                              folder: Path | None = None) -> AudioClassData:  # fmt: skip
    """The same clips labelled by `label_column`: sound (8 classes), count (4) or loudness (2)."""
    if label_column not in LABEL_COLUMNS:
        raise DataError(f"shapes_audio: label_column must be one of {', '.join(LABEL_COLUMNS)}, got '{label_column}'")
    ids, scenes, paths = clip_files(split, n_clips, seed, folder)
    classnames = list(LABEL_COLUMNS[label_column])
    value = {"sound": lambda s: s.sound, "count": lambda s: COUNT_CLASSES[s.count - 1],
             "loudness": lambda s: f"{s.loudness} sounds"}[label_column]  # fmt: skip
    labels = [classnames.index(value(s)) for s in scenes]
    return AudioClassData(
        audio=_audio_source(paths, ids), labels=labels, classnames=classnames, ids=ids,
        source=f"shapes_audio(split={split}, n={n_clips}, seed={seed}, label={label_column})",
        annotation_digest=listing_digest(VERSION, ids, classnames, labels),
        attributes={i: scene_attributes(s) for i, s in zip(ids, scenes)},
    )  # fmt: skip

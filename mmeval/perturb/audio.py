"""Audio perturbations for robustness runs: additive noise at set signal-to-noise ratios, and clipping.

Each is `fn(wave, severity, rng) -> wave` on the decoded mono float32 wave at the model's rate (the audio
loader's threads apply it before the model's feature extraction; io/audio_loading.py), same shape and dtype.

- `white_noise`, `pink_noise`: Gaussian noise, flat spectrum or 1/f power spectrum (-3 dB per octave, from the
  `colorednoise` package, DC excluded), added at SNR 20, 15, 10, 5, 0 dB for severity 1..5 (`SNR_DB`). The SNR
  is against the clip's own power (mean square over the whole clip, leading and trailing silence included, as
  audiomentations' AddGaussianSNR defines it), and the drawn noise is scaled to exactly the power that SNR asks
  for, so the measured SNR of every clip is the target (not only on average).
- `clipping`: samples hard-clipped at a share of the clip's peak |amplitude|: 0.8, 0.6, 0.4, 0.25, 0.1 for
  severity 1..5 (`CLIP_LEVEL`).

Silence: a clip whose RMS is below `SILENCE_RMS` (1e-5, -100 dBFS: digital silence) has no SNR to set; it is
returned unchanged by every perturbation (absolute-level noise would make it a noise-only clip at an arbitrary
level, which is a different test).
"""

from __future__ import annotations

import numpy as np

from mmeval.perturb import register

SNR_DB = {1: 20.0, 2: 15.0, 3: 10.0, 4: 5.0, 5: 0.0}
CLIP_LEVEL = {1: 0.8, 2: 0.6, 3: 0.4, 4: 0.25, 5: 0.1}
SILENCE_RMS = 1e-5


def _power(wave: np.ndarray) -> float:
    return float(np.mean(np.square(wave, dtype=np.float64))) if wave.size else 0.0


def _silent(wave: np.ndarray) -> bool:
    return _power(wave) < SILENCE_RMS**2


def add_at_snr(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`wave` + `noise` scaled so that power(wave) / power(noise) is `snr_db` exactly (float32 out)."""
    scale = np.sqrt(_power(wave) / (10.0 ** (snr_db / 10.0)) / max(_power(noise), 1e-30))
    return (wave.astype(np.float64) + scale * noise).astype(np.float32)


def white_noise(wave: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at SNR_DB[severity]."""
    if _silent(wave):
        return wave
    return add_at_snr(wave, rng.standard_normal(wave.shape[-1]), SNR_DB[severity])


def pink_noise(wave: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) Gaussian noise at SNR_DB[severity]."""
    import colorednoise

    if _silent(wave) or wave.shape[-1] < 2:
        return wave
    return add_at_snr(wave, colorednoise.powerlaw_psd_gaussian(1, wave.shape[-1], random_state=rng), SNR_DB[severity])


def clipping(wave: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Hard clipping at CLIP_LEVEL[severity] x the clip's peak (deterministic: `rng` is not used)."""
    if _silent(wave):
        return wave
    level = CLIP_LEVEL[severity] * float(np.abs(wave).max())
    return np.clip(wave, -level, level).astype(np.float32)


for _name, _fn in (("white_noise", white_noise), ("pink_noise", pink_noise), ("clipping", clipping)):
    register("audio", _name, _fn)

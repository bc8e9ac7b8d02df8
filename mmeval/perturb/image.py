"""The 15 ImageNet-C corruptions (Hendrycks & Dietterich, ICLR 2019) at severities 1-5, on uint8 HxWx3 images.

Parameters and steps follow the paper's code as generalised to any image size by the `imagecorruptions` package
(its maintained fork `imagecorruptions-imaug` is what the tests compare against, pixel for pixel where the random
draws can be matched). Written here rather than wrapped because the package draws from the global `np.random`
state (not per-sample, not safe across threads), and its original release no longer imports on numpy 2 /
scikit-image >= 0.19. Every random draw comes from the `rng` passed in, so an image's corruption depends only on
(seed, corruption, severity, sample id); see `mmeval.perturb.rng_for`.

Differences from the package, on purpose:
- glass_blur's pixel loop is vectorised (chains of copies resolved by pointer doubling, same result as the loop);
  like the published loop, its "swap" through numpy views copies the displaced pixel and leaves the other as is.
- frost picks among the 5 textures the paper's code uses (`randint(5)`; the fork picks among 6); its textures
  are read from the installed `imagecorruptions` package, and resized with torch's bicubic (a=-0.75, OpenCV's
  kernel) instead of `cv2.resize` (within one grey level), for the crop's pixels only.
- fog's fractal is float64 as in the paper's code (the fork computes it in float32).
Like the paper's saved images, results are truncated to uint8 (`np.uint8`), not rounded.
Sizes: noise, blur radii, glass and motion blur and snow flakes are in pixels, as in the package (so a blur is
relatively milder on a 640x480 image than on ImageNet's 224x224); zoom, fog, elastic and pixelate scale with the
image; frost crops the textures at their own resolution (scaled up only when the image is larger).
Libraries: scipy.ndimage (Gaussian filters, zooms, resampling), scipy.fft (defocus), Pillow (pixelate, JPEG),
matplotlib (HSV), torch (frost's bicubic); OpenCV, scikit-image and numba (the package's) are not needed.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from mmeval.perturb import register


def _ndimage():
    """scipy.ndimage, imported when a corruption first runs: `mmeval validate` imports this module to check
    perturbation names and should not pay for scipy."""
    from scipy import ndimage

    return ndimage


def _check(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"image corruptions take a uint8 HxWx3 array, got {got}")
    return img


def _to_uint8(x: np.ndarray, top: float = 255.0) -> np.ndarray:
    """Clip to [0, top] and truncate to uint8, as the paper's code saves its images."""
    return np.uint8(np.clip(x, 0, top) * (255.0 / top))


# ---------------------------------------------------------------- noise

def gaussian_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise per pixel and channel."""
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    x = _check(img) / 255.0
    return _to_uint8(x + rng.normal(0.0, c, x.shape), 1.0)


def shot_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson (photon) noise."""
    c = (60, 25, 12, 5, 3)[severity - 1]
    x = _check(img) / 255.0
    return _to_uint8(rng.poisson(x * c) / float(c), 1.0)


def impulse_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: a share `amount` of values set to 0 or 1 with equal odds, drawn as
    scikit-image's `random_noise(mode='s&p')` draws them (flip mask, then salt mask)."""
    amount = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    x = _check(img) / 255.0
    flipped = rng.random(x.shape) <= amount
    salted = rng.random(x.shape) <= 0.5
    x[flipped & salted] = 1.0
    x[flipped & ~salted] = 0.0
    return _to_uint8(x, 1.0)


# ---------------------------------------------------------------- blur

def _gaussian(x: np.ndarray, sigma, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """scikit-image's `filters.gaussian` (channels last kept apart) on a float image, via scipy."""
    sig = (sigma, sigma, 0) if x.ndim == 3 and np.ndim(sigma) == 0 else sigma
    return _ndimage().gaussian_filter(x, sigma=sig, mode=mode, truncate=truncate)


def _disk(radius: int, alias_blur: float) -> np.ndarray:
    """The paper's anti-aliased disk kernel: an aliased disk smoothed by a small Gaussian (cv2.GaussianBlur with
    its default reflect-101 border = scipy's 'mirror')."""
    size = max(8, radius)
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-size, size + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array(xx ** 2 + yy ** 2 <= radius ** 2, dtype=np.float32)
    disk /= disk.sum()
    taps = np.exp(-((np.arange(ksize) - (ksize - 1) / 2) ** 2) / (2 * alias_blur ** 2))
    taps /= taps.sum()
    ndimage = _ndimage()
    out = ndimage.correlate1d(disk.astype(np.float64), taps, axis=0, mode="mirror")
    return ndimage.correlate1d(out, taps, axis=1, mode="mirror").astype(np.float32)


def defocus_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Convolution with an anti-aliased disk (cv2.filter2D's reflect-101 border; by FFT, as cv2 does for large
    kernels)."""
    radius, alias = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))[severity - 1]
    x = _check(img) / 255.0
    kernel = _disk(radius, alias).astype(np.float64)
    pad = kernel.shape[0] // 2
    # numpy's 'reflect' is OpenCV's BORDER_REFLECT_101; the kernel is symmetric, so convolution = correlation
    padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    # convolution by FFT at a fast length (scipy.signal.fftconvolve would do it, but takes seconds to import);
    # from index 2 * pad on, the circular convolution of the zero-extended input is the linear one
    from scipy import fft  # lazily, like scipy.ndimage

    h, w = x.shape[:2]
    size = (fft.next_fast_len(padded.shape[0], True), fft.next_fast_len(padded.shape[1], True))
    spectrum = fft.rfft2(padded, s=size, axes=(0, 1)) * fft.rfft2(kernel, s=size)[..., None]
    out = fft.irfft2(spectrum, s=size, axes=(0, 1))[2 * pad:2 * pad + h, 2 * pad:2 * pad + w]
    return _to_uint8(out, 1.0)


def _shuffle_sources(h: int, w: int, d: int, offsets: np.ndarray) -> np.ndarray:
    """Where each written pixel of one glass-blur pass takes its value from (flat index r * w + c into the image
    as it was before the pass), as an (h - 2d) x (w - 2d) array. The published loop visits (r, c) for
    r = h-d..d+1, c = w-d..d+1 (descending) and sets x[r, c] = x[r+dy, c+dx] in place, so a source visited
    earlier carries what was copied into it. Following those chains to their start by pointer doubling gives the
    loop's result without the loop (no library does this; the package's fork compiles the loop with numba)."""
    nr, nc = h - 2 * d, w - 2 * d
    dx, dy = offsets[..., 0], offsets[..., 1]
    i, j = np.ogrid[:nr, :nc]  # visit position: pixel (h - d - i, w - d - j), step i * nc + j
    base = ((h - d - i + dy) * w + (w - d - j + dx)).ravel()
    # the source is a visited pixel, visited before this one (a row below, or the same row to the right)
    earlier = (i - dy >= 0) & (i - dy < nr) & (j - dx >= 0) & (j - dx < nc) & ((dy > 0) | ((dy == 0) & (dx > 0)))
    nxt = np.where(earlier, (i - dy) * nc + (j - dx), -1).ravel()
    todo = np.flatnonzero(nxt >= 0)
    while todo.size:
        q = nxt[todo]
        q_next = nxt[q]
        done = q_next < 0  # q's own source is final: take it
        base[todo[done]] = base[q[done]]
        nxt[todo[done]] = -1
        nxt[todo[~done]] = q_next[~done]  # jump over q (its source is q_next's)
        todo = todo[~done]
    return base.reshape(nr, nc)


def glass_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, local pixel shuffles (`iterations` passes, offsets in [-delta, delta)), Gaussian blur."""
    sigma, delta, iterations = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))[severity - 1]
    x = np.uint8(_gaussian(_check(img) / 255.0, sigma) * 255)
    h, w = x.shape[:2]
    nr, nc = max(h - 2 * delta, 0), max(w - 2 * delta, 0)
    # (dx, dy) per visited pixel, in the loop's order, as the loop draws them
    offsets = rng.integers(-delta, delta, size=(iterations, nr, nc, 2))
    if nr and nc:
        for it in range(iterations):
            sources = _shuffle_sources(h, w, delta, offsets[it])
            new = x.copy()
            new[h - delta:delta:-1, w - delta:delta:-1] = x.reshape(-1, 3)[sources]
            x = new
    return _to_uint8(_gaussian(x / 255.0, sigma), 1.0)


def _motion_kernel_blur(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """The package's motion blur (its replacement for ImageMagick's): a half-Gaussian-weighted sum of copies of
    the image shifted along `angle`, edges replicated. Returns float64."""
    width = 2 * radius + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    kernel /= kernel.sum()
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(*point)
    h, w = x.shape[:2]
    pad = width
    widths = ((pad, pad), (pad, pad)) + ((0, 0),) * (x.ndim - 2)
    padded = np.pad(x, widths, mode="edge")  # shifted[i, j] = x[clip(i - dy), clip(j - dx)]
    blurred = np.zeros(x.shape, dtype=np.float64)
    for i in range(width):
        dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
        dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
        if abs(dy) >= h or abs(dx) >= w:
            break  # the motion left the image
        blurred += kernel[i] * padded[pad - dy:pad - dy + h, pad - dx:pad - dx + w]
    return blurred


def motion_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Linear motion blur at a random angle in [-45, 45) degrees."""
    radius, sigma = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))[severity - 1]
    angle = rng.uniform(-45, 45)
    return _to_uint8(_motion_kernel_blur(_check(img), radius, sigma, angle))


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by `factor` (bilinear), cropped back to at least the input's size."""
    ch0 = int(np.ceil(x.shape[0] / float(factor)))
    ch1 = int(np.ceil(x.shape[1] / float(factor)))
    top0, top1 = (x.shape[0] - ch0) // 2, (x.shape[1] - ch1) // 2
    crop = x[top0:top0 + ch0, top1:top1 + ch1]
    if factor == 1:
        return crop.copy()
    # one 2-D zoom per channel: the same values as the package's (factor, factor, 1) zoom, twice as fast
    zoom = _ndimage().zoom
    return np.stack([zoom(crop[..., k], (factor, factor), order=1) for k in range(x.shape[2])], axis=-1)


def zoom_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Mean of the image and centre zooms of it by growing factors."""
    factors = (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
               np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03))[severity - 1]
    x = (_check(img) / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    h, w = x.shape[:2]
    for factor in factors:
        layer = _clipped_zoom(x, factor)[:h, :w]
        out[:layer.shape[0], :layer.shape[1]] += layer
    return _to_uint8((x + out) / (len(factors) + 1), 1.0)


# ---------------------------------------------------------------- weather

def snow(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Motion-blurred snow flakes over a whitened image."""
    loc, scale, zoom, threshold, radius, sigma, keep = (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))[severity - 1]
    x = np.array(_check(img), dtype=np.float32) / 255.0
    h, w = x.shape[:2]
    flakes = rng.normal(loc, scale, (h, w))
    flakes = _clipped_zoom(flakes[..., None], zoom)
    flakes[flakes < threshold] = 0
    flakes = np.clip(flakes.squeeze(-1), 0, 1)
    flakes = _motion_kernel_blur(flakes, radius, sigma, rng.uniform(-135, -45))
    flakes = (np.round(flakes * 255).astype(np.uint8) / 255.0)[:h, :w, None]
    # OpenCV's RGB2GRAY weights, in float32 as cv2.cvtColor computes them
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = keep * x + (1 - keep) * np.maximum(x, gray[..., None] * 1.5 + 0.5)
    return _to_uint8(x + flakes + np.rot90(flakes, k=2), 1.0)


_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")


@functools.cache
def _frost_texture(index: int) -> np.ndarray:
    """One of the paper's frost photographs (RGB uint8), read from the installed `imagecorruptions` package
    (either its original release or the `imagecorruptions-imaug` fork; the package itself is not imported)."""
    from mmeval.errors import MmevalError

    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise MmevalError("the image corruption 'frost' needs the frost textures of the imagecorruptions package: "
                          "pip install imagecorruptions-imaug (or mmeval[perturb])")
    path = Path(next(iter(spec.submodule_search_locations))) / "frost" / _FROST_FILES[index]
    with Image.open(path) as texture:
        return np.asarray(texture.convert("RGB"))


def _frost_size(index: int, h: int, w: int) -> tuple[int, int]:
    """The size the package resizes a texture to for an h x w image: x1.1, more when the image is larger."""
    fh, fw = _frost_texture(index).shape[:2]
    factor = 1.0
    if fh < h and fw >= w:
        factor = h / fh
    elif fh >= h and fw < w:
        factor = w / fw
    elif fh < h and fw < w:
        factor = max(h / fh, w / fw)
    factor *= 1.1
    return int(np.ceil(fh * factor)), int(np.ceil(fw * factor))


def _frost_crop(index: int, h: int, w: int, top: int, left: int) -> np.ndarray:
    """The h x w crop at (top, left) of the texture resized as `cv2.resize(INTER_CUBIC)` resizes it (a=-0.75,
    pixel centres aligned, edges replicated), computed for the crop's pixels only: torch's bicubic `grid_sample`
    at the crop's source coordinates (cv2 is not a dependency, and resizing the whole texture costs more)."""
    import torch  # only here: the other corruptions need no torch

    fh, fw = _frost_texture(index).shape[:2]
    rh, rw = _frost_size(index, h, w)
    ys = ((np.arange(top, top + h) + 0.5) * fh / rh - 0.5 + 0.5) * 2 / fh - 1  # source pixel -> [-1, 1]
    xs = ((np.arange(left, left + w) + 0.5) * fw / rw - 0.5 + 0.5) * 2 / fw - 1
    grid = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), axis=-1)
    with torch.no_grad():
        out = torch.nn.functional.grid_sample(_frost_tensor(index), torch.from_numpy(grid).float()[None],
                                              mode="bicubic", padding_mode="border", align_corners=False)
    # rounded as cv2 rounds its uint8 resize; in numpy (torch's small element-wise ops cost more here)
    return np.clip(np.rint(out[0].numpy().transpose(1, 2, 0)), 0, 255).astype(np.uint8)


@functools.cache
def _frost_tensor(index: int):
    """The texture as a float 1x3xHxW torch tensor (converted once per process)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(_frost_texture(index).transpose(2, 0, 1))).float()[None]


def _frost_blend(img: np.ndarray, severity: int, index: int, top: int, left: int) -> np.ndarray:
    keep, add = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))[severity - 1]
    h, w = img.shape[:2]
    return _to_uint8(keep * img.astype(np.float64) + add * _frost_crop(index, h, w, top, left))


def frost(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a frost photograph blended over the image."""
    h, w = _check(img).shape[:2]
    index = int(rng.integers(len(_FROST_FILES)))
    th, tw = _frost_size(index, h, w)
    top, left = int(rng.integers(0, th - h)), int(rng.integers(0, tw - w))
    return _frost_blend(img, severity, index, top, left)


def _plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A size x size height map in [0, 1] by the diamond-square algorithm, as in the paper's code."""
    grid = np.empty((size, size), dtype=np.float64)
    grid[0, 0] = 0
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, shift=-1, axis=0)
        square += np.roll(square, shift=-1, axis=1)
        grid[half:size:step, half:size:step] = square / 4 + wibble * rng.uniform(-wibble, wibble, square.shape)
        dr = grid[half:size:step, half:size:step]
        ul = grid[0:size:step, 0:size:step]
        lt = (dr + np.roll(dr, 1, axis=0)) + (ul + np.roll(ul, -1, axis=1))
        grid[0:size:step, half:size:step] = lt / 4 + wibble * rng.uniform(-wibble, wibble, lt.shape)
        tt = (dr + np.roll(dr, 1, axis=1)) + (ul + np.roll(ul, -1, axis=0))
        grid[half:size:step, 0:size:step] = tt / 4 + wibble * rng.uniform(-wibble, wibble, tt.shape)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def fog(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A plasma-fractal haze added to the image, contrast compressed."""
    strength, decay = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))[severity - 1]
    x = _check(img) / 255.0
    h, w = x.shape[:2]
    size = 1 << (max(h, w, 3) - 1).bit_length()  # next power of two (3: the package counts the channels too)
    top = x.max()
    x += strength * _plasma_fractal(size, decay, rng)[:h, :w, None]
    return _to_uint8(x * top / (top + strength), 1.0)


def brightness(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """HSV value raised by 0.1 x severity."""
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv  # the HSV round trip (a runtime dependency already)

    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    hsv = rgb_to_hsv(_check(img) / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return _to_uint8(hsv_to_rgb(hsv), 1.0)


# ---------------------------------------------------------------- digital

def contrast(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Distance from the per-channel mean scaled down."""
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    x = _check(img) / 255.0
    means = x.mean(axis=(0, 1), keepdims=True)
    return _to_uint8((x - means) * c + means, 1.0)


def elastic_transform(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random displacement field (Gaussian-filtered uniform noise), bilinear resampling."""
    alpha = 250 * (0.05, 0.065, 0.085, 0.1, 0.12)[severity - 1]
    x = np.array(_check(img), dtype=np.float32) / 255.0
    h, w = x.shape[:2]
    sigma = np.array((h, w)) * 0.01
    reach = h * 0.005  # the package bounds both directions by the height
    dx = (_gaussian(rng.uniform(-reach, reach, (h, w)), sigma, mode="reflect", truncate=3) * alpha)
    dy = (_gaussian(rng.uniform(-reach, reach, (h, w)), sigma, mode="reflect", truncate=3) * alpha)
    dx, dy = dx.astype(np.float32), dy.astype(np.float32)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([yy + dy.astype(np.float64), xx + dx.astype(np.float64)])
    ndimage = _ndimage()
    out = np.stack([ndimage.map_coordinates(x[..., k], coords, order=1, mode="reflect") for k in range(3)], -1)
    return _to_uint8(out, 1.0)


def pixelate(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-downscaled by 0.6 .. 0.25, nearest-upscaled back."""
    c = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
    h, w = _check(img).shape[:2]
    small = Image.fromarray(img).resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX)
    return np.asarray(small.resize((w, h), Image.NEAREST)).copy()


def jpeg_compression(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Re-encoded as JPEG at quality 25 .. 7 (Pillow's encoder)."""
    quality = (25, 18, 15, 10, 7)[severity - 1]
    buffer = io.BytesIO()
    Image.fromarray(_check(img)).save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


CORRUPTIONS = {fn.__name__: fn for fn in (
    gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost, fog,
    brightness, contrast, elastic_transform, pixelate, jpeg_compression)}

for _name, _fn in CORRUPTIONS.items():
    register("image", _name, _fn)

"""Image faults: every decodable kind gives the reference tools' pixels on both decode paths, every undecodable
one gives the same one-line error on both, and through `mmeval run` a bad image either fails its benchmark
(exit code 2, one `error:` line naming the file) or, with `data.on_bad_image: skip`, is skipped and counted.

The reference is what open_clip and CLIP_benchmark do: torchvision's `pil_loader` (Image.open + convert("RGB"));
the EXIF orientation is not applied. The GPU path's logic (which bytes go to nvJPEG, which are rejected first)
runs here with torchvision's CPU JPEG decoder standing in for nvJPEG.
"""

from __future__ import annotations

import concurrent.futures
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faults.conftest import (
    bad_images,
    coco_benchmark,
    complete_report,
    encode,
    error_lines,
    good_images,
    gray16,
    mmeval,
    picture,
    reference_pixels,
    rgb16_png,
    shown,
    write_coco,
    write_config,
)
from mmeval.errors import DataError
from mmeval.io.image_loading import ImagePass, _decode_jpeg, _gpu_decode, _ImageDataset
from mmeval.io.images import FileImages, decode_image, gpu_decodable
from mmeval.io.pixels import PixelPipeline

GOOD, BAD = good_images(), bad_images()
SKIP_HINT = " (set data.on_bad_image: skip to skip such images)"


# --- decoding, in process -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(GOOD) - {"gray16.png"}))
def test_decodable_images_give_the_reference_pixels(name: str) -> None:
    decoded = np.asarray(decode_image(GOOD[name], name))
    assert decoded.shape == (30, 40, 3)
    np.testing.assert_array_equal(decoded, reference_pixels(GOOD[name]))


def test_a_png_in_a_jpg_file_is_read_by_its_content() -> None:
    np.testing.assert_array_equal(np.asarray(decode_image(GOOD["png-named.jpg"], "x.jpg")), np.asarray(picture()))


def test_16_bit_grayscale_keeps_its_high_byte_where_the_reference_clips() -> None:
    values = gray16()
    decoded = np.asarray(decode_image(GOOD["gray16.png"], "gray16.png"))
    np.testing.assert_array_equal(decoded, np.repeat((values // 256).astype(np.uint8)[..., None], 3, axis=-1))
    # Pillow's convert("RGB") clips at 255: the reference sees a nearly white image (why mmeval differs here).
    reference = reference_pixels(GOOD["gray16.png"])
    np.testing.assert_array_equal(reference[..., 0], np.minimum(values, 255))
    assert (reference == 255).mean() > 0.95
    # Pillow reads 16-bit RGB PNGs at 8 bits, their high byte: the rule mmeval applies to 16-bit grayscale too.
    rgb = np.stack([values, values[::-1], 65535 - values], axis=-1)
    np.testing.assert_array_equal(np.asarray(decode_image(rgb16_png(rgb), "rgb16.png")), rgb >> 8)


def test_32_bit_images_are_converted_as_the_reference_does() -> None:
    # 32-bit integer ("I", e.g. a 16-bit PGM) and float ("F") images have no fixed range: Pillow's conversion,
    # which clips to 0-255, is kept, as in the reference.
    values = gray16().astype(np.int32) // 64  # 0-1023
    for image in (Image.fromarray(values), Image.fromarray(values.astype(np.float32) / 4)):
        data = encode(image, "TIFF")
        decoded = np.asarray(decode_image(data, "a.tif"))
        np.testing.assert_array_equal(decoded, reference_pixels(data))
        assert 0 < (decoded == 255).mean() < 1


def test_exif_orientation_is_not_applied_on_either_path() -> None:
    data = GOOD["exif-rotated.jpg"]
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == 6  # the tag is there
    cpu = np.asarray(decode_image(data, "exif.jpg"))
    assert cpu.shape == (30, 40, 3)  # as stored: 40 wide, not turned to 30 x 40
    np.testing.assert_array_equal(cpu, reference_pixels(data))
    tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    gpu_path = _decode_jpeg(tensor, torch.device("cpu"))  # the GPU path's call, on torchvision's CPU decoder
    np.testing.assert_array_equal(gpu_path.permute(1, 2, 0).numpy(), cpu)
    rotated = _decode_jpeg_rotated(tensor)  # what applying the orientation would give instead
    assert tuple(rotated.shape) == (3, 40, 30)


def _decode_jpeg_rotated(tensor: torch.Tensor) -> torch.Tensor:
    import warnings

    from torchvision.io import decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(tensor, apply_exif_orientation=True)


@pytest.mark.parametrize("name", sorted(BAD))
def test_undecodable_images_are_one_line_errors_naming_the_file(name: str) -> None:
    data, expected = BAD[name]
    with pytest.raises(DataError) as caught:
        decode_image(data, f"/data/{name}")
    assert str(caught.value) == f"/data/{name}: {expected}"


def test_the_bomb_limit_is_pillows_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    data = GOOD["rgb.jpg"]  # 40 x 30 = 1,200 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for check in (decode_image, gpu_decodable):  # the GPU path checks before handing the bytes to nvJPEG
        with pytest.raises(DataError, match=r"^a\.jpg: cannot decode image \(over Pillow's decompression-bomb "
                                            r"limit, PIL\.Image\.MAX_IMAGE_PIXELS = 1000: Image size \(1200 pixels\)"):
            check(data, "a.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1200)
    assert decode_image(data, "a.jpg").size == (40, 30) and gpu_decodable(data, "a.jpg")


# --- the two decode paths agree ------------------------------------------------------------------------------------


def _identity_pipeline() -> PixelPipeline:
    """Pixels at their own size (40 x 30): both paths' resizing is then the identity, and only decoding differs."""
    return PixelPipeline(cpu_geometry=lambda image: image, size=(30, 40), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def test_cpu_and_gpu_paths_decode_and_reject_the_same_images(tmp_path: Path) -> None:
    files = {**GOOD, **{name: data for name, (data, _) in BAD.items()}}
    names = sorted(files)
    for name in names:
        (tmp_path / name).write_bytes(files[name])
    source, pipeline = FileImages([tmp_path / n for n in names]), _identity_pipeline()
    cpu_items = [_ImageDataset(source, pipeline.to_uint8)[i] for i in range(len(names))]
    raw_items = [_ImageDataset(source, pipeline.to_uint8, raw_jpeg=True)[i] for i in range(len(names))]

    # Only complete YCbCr / grayscale JPEGs reach nvJPEG; CMYK and non-JPEG bytes are decoded in the worker.
    to_nvjpeg = {names[i] for i, data, _, error in raw_items if isinstance(data, bytes)}
    assert to_nvjpeg == {"rgb.jpg", "gray.jpg", "progressive.jpg", "trailing-bytes.jpg", "exif-rotated.jpg",
                         "thumbnail.jpg"}
    # The same images are rejected with the same message, and the same bytes are hashed.
    assert [(i, error) for i, _, _, error in raw_items] == [(i, error) for i, _, _, error in cpu_items]
    assert {names[i]: error for i, _, _, error in cpu_items if error} == {
        name: f"{tmp_path / name}: {expected}" for name, (_, expected) in BAD.items()}
    assert [digest for *_, digest, _ in raw_items] == [digest for *_, digest, _ in cpu_items]

    done = ImagePass()
    good = [(i, data) for i, data, _, error in raw_items if error is None]
    batch = _gpu_decode(good, pipeline, torch.device("cpu"), source, done, "fail")
    cpu = {i: pixels for i, pixels, _, error in cpu_items if error is None}
    assert done.batch_indices == sorted(cpu) and not done.bad
    for row, index in enumerate(done.batch_indices):
        torch.testing.assert_close(batch[row], cpu[index], atol=0, rtol=0, msg=names[index])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (nvJPEG)")
def test_nvjpeg_decodes_what_the_cpu_path_does(tmp_path: Path) -> None:
    """On a GPU: nvJPEG gets the same images as above, applies no EXIF orientation, and its pixels differ from
    Pillow's only by IDCT rounding."""
    names = sorted(GOOD)
    for name in names:
        (tmp_path / name).write_bytes(GOOD[name])
    source, pipeline = FileImages([tmp_path / n for n in names]), _identity_pipeline()
    raw = [_ImageDataset(source, pipeline.to_uint8, raw_jpeg=True)[i] for i in range(len(names))]
    done = ImagePass()
    batch = _gpu_decode([(i, data) for i, data, _, _ in raw], pipeline, torch.device("cuda"), source, done, "fail")
    assert done.batch_indices == list(range(len(names))) and not done.bad
    for row, name in enumerate(names):
        cpu = torch.from_numpy(np.asarray(decode_image(GOOD[name], name))).permute(2, 0, 1).int()
        difference = (batch[row].cpu().int() - cpu).abs()
        assert batch[row].shape == (3, 30, 40), name  # exif-rotated.jpg too: not turned
        assert difference.float().mean() < 1.5 and difference.max() <= 16, (name, difference.max())


# --- through `mmeval run` ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Two runs at once: each bad image in its own benchmark (failing), and all images in one benchmark with
    on_bad_image: skip; plus the good kinds alone, to compare the skipping run's metrics with."""
    root = tmp_path_factory.mktemp("image-faults")
    good = write_coco(root / "good", GOOD)
    fail = [coco_benchmark("good-kinds", good, root / "good" / "images")]
    for name, (data, _) in sorted(BAD.items()):
        folder = root / name
        annotations = write_coco(folder, {"a.jpg": GOOD["rgb.jpg"], name: data, "z.jpg": GOOD["gray.jpg"]})
        fail.append(coco_benchmark(name, annotations, folder / "images"))
    mixed = write_coco(root / "mixed", {**GOOD, **{name: data for name, (data, _) in BAD.items()}})
    skip = [coco_benchmark("mixed", mixed, root / "mixed" / "images", on_bad_image="skip")]
    commands = {"fail": write_config(root, "fail", fail), "skip": write_config(root, "skip", skip)}
    with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
        futures = {name: pool.submit(mmeval, root, "run", "--config", path) for name, path in commands.items()}
        return {"root": root, **{name: future.result() for name, future in futures.items()}}


def test_each_bad_image_fails_its_benchmark_with_one_line(runs) -> None:
    done, root = runs["fail"], runs["root"]
    assert done.returncode == 2, shown(done)
    assert error_lines(done) == [f"benchmark '{name}': {root / name / 'images' / name}: {expected}{SKIP_HINT}"
                                 for name, (_, expected) in sorted(BAD.items())], shown(done)


def test_the_failing_run_writes_a_complete_report(runs) -> None:
    report = complete_report(runs["root"] / "reports-fail", "fail")
    assert report["status"] == "partial"  # some benchmarks failed; the one that ran is kept whole
    for name, (_, expected) in BAD.items():
        assert report["benchmarks"][name]["status"] == "failed"
        assert report["benchmarks"][name]["error"].endswith(f"{name}: {expected}{SKIP_HINT}")
    kinds = report["benchmarks"]["good-kinds"]
    assert kinds["status"] == "complete", kinds
    assert (kinds["dataset"]["n_images"], kinds["dataset"]["n_texts"], kinds["dataset"]["n_skipped_images"]) == (
        len(GOOD), 2 * len(GOOD), 0)


def test_skipped_images_are_counted_and_named(runs) -> None:
    done, root = runs["skip"], runs["root"]
    assert done.returncode == 0, shown(done)
    assert error_lines(done) == []
    folder = root / "mixed" / "images"
    names = sorted({**GOOD, **BAD})
    expected = [{"image_id": names.index(name) + 1, "reason": f"{folder / name}: {message}"}
                for name, (_, message) in sorted(BAD.items())]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(expected) == 6  # the first 5 are named, then one line says the rest are counted (#14 item 5)
    assert warnings == [*(f"warning: skipping image: {row['reason']}" for row in expected[:5]),
                        "warning: more unreadable images: counted, not shown one by one (the report lists every one)",
                        "warning: mixed: skipped 6 of 18 images (33.3%); the report lists each under "
                        "dataset.skipped_images"], shown(done)
    report = complete_report(root / "reports-skip", "skip")
    assert report["status"] == "complete"
    dataset = report["benchmarks"]["mixed"]["dataset"]
    assert dataset["n_skipped_images"] == len(BAD) and dataset["skipped_images"] == expected
    assert (dataset["n_images"], dataset["n_texts"]) == (len(GOOD), 2 * len(GOOD))


def test_skipping_gives_the_metrics_of_the_data_without_the_bad_images(runs) -> None:
    fail = complete_report(runs["root"] / "reports-fail", "fail")["benchmarks"]["good-kinds"]["metrics"]
    skip = complete_report(runs["root"] / "reports-skip", "skip")["benchmarks"]["mixed"]["metrics"]
    assert skip.keys() == fail.keys()
    for metric, entry in skip.items():
        assert entry["value"] == pytest.approx(fail[metric]["value"], abs=1e-6), metric

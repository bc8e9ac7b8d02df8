"""Synthesise mmeval's spoken shapes set: questions about the shapes_vqa scenes and shapes commands, spoken by
espeak-ng in several voices and speeds, stored as 16 kHz mono FLAC + a NeMo JSONL manifest + a JSGF grammar.

    apt-get install -y espeak-ng        # the synthesiser (espeak-ng 1.51 made the shipped set)
    python scripts/make_spoken_set.py   # writes mmeval/assets/spoken-shapes/

The questions are those of `format: shapes_vqa` (split test, seed 0, 3 per scene) for the first N_SCENES scenes,
so each spoken question links to its image (image_id) and answer: the manifest keeps image_id, question_id,
answer and answer_type (the spoken-VQA task reads them). Commands ("show me the red circle") have no image.
Voice, speed and pitch are drawn per utterance from a seeded generator: rerunning rebuilds the same set (given
the same espeak-ng). espeak writes 22.05 kHz; soxr (HQ) resamples to 16 kHz.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mmeval.data.shapes import COLORS, KINDS
from mmeval.data.shapes_vqa import load_shapes_vqa

OUT = Path(__file__).resolve().parent.parent / "mmeval" / "assets" / "spoken-shapes"
VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-scotland")
SPEEDS = (140, 165, 190)  # words per minute (espeak's default is 175)
N_SCENES, SPLIT, SEED, PER_SCENE = 50, "test", 0, 3
N_COMMANDS = 50
RATE = 16000
_PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars", "cross": "crosses"}


def commands(n: int, rng: random.Random) -> list[str]:
    """Short spoken commands over the shapes vocabulary."""
    colors, kinds = sorted(COLORS), list(KINDS)
    forms = [
        lambda: f"show me the {rng.choice(colors)} {rng.choice(kinds)}",
        lambda: f"point to the {rng.choice(('small', 'large'))} {rng.choice(kinds)}",
        lambda: f"move the {rng.choice(colors)} {rng.choice(kinds)} to the {rng.choice(('left', 'right'))}",
        lambda: f"count the {rng.choice(colors)} shapes",
        lambda: f"remove all the {_PLURALS[rng.choice(kinds)]}",
    ]
    out: list[str] = []
    while len(out) < n:
        text = rng.choice(forms)()
        if text not in out:
            out.append(text)
    return out


def grammar() -> str:
    """A JSGF grammar that accepts every question and command of the set (and more of the same shape)."""
    color = " | ".join(sorted(COLORS))
    kind = " | ".join(KINDS)
    plural = " | ".join(_PLURALS[k] for k in KINDS)
    lines = [
        "#JSGF V1.0;",
        "grammar shapes;",
        f"<color> = {color};",
        f"<kind> = {kind};",
        f"<kinds> = {plural};",
        "<size> = small | large;",
        "<colorword> = color | colour;",
        "<background> = white | light gray | beige | black | dark gray | navy;",
        ("<question> = is there (a | an) <color> <kind>"
         " | how many shapes are there | how many objects are in the image"
         " | how many <color> shapes are there | how many <kinds> are there"
         " | what <colorword> is the <kind> | is the <kind> small or large"
         " | what shape is the <color> one | which shape is <color>"
         " | what <colorword> is the background;"),
        ("<command> = show me the <color> <kind> | point to the <size> <kind>"
         " | move the <color> <kind> to the (left | right) | count the <color> shapes | remove all the <kinds>;"),
        "public <utterance> = <question> | <command>;",
    ]
    return "\n".join(lines) + "\n"


def speak(text: str, voice: str, speed: int, pitch: int, workdir: Path) -> np.ndarray:
    """espeak-ng's waveform of `text` as float32 mono at RATE."""
    wav = workdir / "utterance.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text], check=True)
    samples, rate = sf.read(wav, dtype="float32")
    samples = soxr.resample(samples, rate, RATE, quality="HQ").astype(np.float32)
    loud = np.flatnonzero(np.abs(samples) > 0.01)  # trim espeak's leading / trailing silence to 0.1 s
    keep = RATE // 10
    return samples[max(0, loud[0] - keep) : loud[-1] + keep] if len(loud) else samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    data = load_shapes_vqa(SPLIT, N_SCENES, SEED, questions_per_image=PER_SCENE)
    items = [{"kind": "question", "text": q.text, "image_id": data.image_ids[q.image], "question_id": q.question_id,
              "answer": q.answers[0], "answer_type": q.answer_type,
              "shapes_vqa": {"split": SPLIT, "seed": SEED, "n_images": N_SCENES, "questions_per_image": PER_SCENE}}
             for q in data.questions]  # fmt: skip
    items += [{"kind": "command", "text": text} for text in commands(N_COMMANDS, rng)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, item in enumerate(items):
            voice, speed, pitch = rng.choice(VOICES), rng.choice(SPEEDS), rng.randint(35, 65)
            samples = speak(item["text"], voice, speed, pitch, Path(tmp))
            name = f"{number:04d}.flac"
            # 12-bit resolution in a 16-bit FLAC (the low bits zero, which FLAC stores for free): a third smaller,
            # quantisation noise at -72 dB, far below what changes a transcript
            samples = np.round(np.clip(samples, -1, 1 - 1 / 2048) * 2048) / 2048
            sf.write(args.out / name, samples, RATE, subtype="PCM_16")
            rows.append({"audio_filepath": name, "text": item["text"], "duration": round(len(samples) / RATE, 3),
                         "id": f"spoken-{number:04d}", "speaker": voice, "voice": voice, "speed_wpm": speed,
                         "pitch": pitch, **{k: v for k, v in item.items() if k != "text"}})  # fmt: skip
    (args.out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (args.out / "shapes.jsgf").write_text(grammar())
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    (args.out / "README.md").write_text(
        f"# spoken-shapes\n\n{len(rows)} utterances ({sum(r['kind'] == 'question' for r in rows)} shapes_vqa questions, "
        f"{sum(r['kind'] == 'command' for r in rows)} commands), 16 kHz mono FLAC, made by "
        f"`scripts/make_spoken_set.py` with {version}.\nVoices {', '.join(VOICES)}; speeds {SPEEDS} wpm.\n"
        "`manifest.jsonl` is a NeMo manifest (audio_filepath, text, duration, speaker + the question's image_id, "
        "question_id, answer); `shapes.jsgf` is a JSGF grammar of the set's sentences.\n"
    )
    total = sum(r["duration"] for r in rows)
    size = sum(p.stat().st_size for p in args.out.glob("*.flac"))
    print(f"{len(rows)} utterances, {total:.0f} s of audio, {size / 1e6:.1f} MB of FLAC in {args.out}")


if __name__ == "__main__":
    main()

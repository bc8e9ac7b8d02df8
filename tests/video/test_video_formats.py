"""Video annotation formats on tiny fixture files written here: MSR-VTT (JSON, 1k-A CSV), MSVD (txt, CSV),
DiDeMo, the generic manifest (JSON / JSONL / CSV; captions, questions, multiple choice, labels), frame folders,
hf_video (a tiny `datasets.Dataset`), shapes_video (splits, determinism); config checks; bad annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmeval.config.data import DataConfig
from mmeval.config.video import FrameSampling
from mmeval.data import shapes_video
from mmeval.data.video_data import VideoCaptionData, VideoClassData, VideoQAData
from mmeval.data.video_manifest import load_video_data, missing_videos
from mmeval.errors import DataError
from mmeval.io.video import read_clip


def data(**fields) -> DataConfig:
    return DataConfig(**fields)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("video0.mp4", "video1.mp4", "video2.mp4", "clipA.avi", "flickr_1.mp4"):
        (videos / name).write_bytes(b"")  # the loaders only resolve paths; decoding is tested elsewhere
    return tmp_path


def test_msrvtt_json_by_split_and_the_1k_a_csv(folder: Path) -> None:
    annotations = folder / "msrvtt.json"
    annotations.write_text(json.dumps({
        "videos": [{"video_id": "video0", "split": "train", "category": 3},
                   {"video_id": "video1", "split": "test", "category": 9},
                   {"video_id": "video2", "split": "test", "category": 9}],
        "sentences": [{"video_id": "video1", "caption": "a man sings", "sen_id": 0},
                      {"video_id": "video0", "caption": "a cat", "sen_id": 1},
                      {"video_id": "video1", "caption": "someone is singing", "sen_id": 2},
                      {"video_id": "video2", "caption": "cars race", "sen_id": 3}]}))  # fmt: skip
    test = load_video_data(
        data(format="msrvtt", annotations=annotations, videos=folder / "videos", split="test"), "captions"
    )
    assert isinstance(test, VideoCaptionData)
    assert test.ids == ["video1", "video2"] and test.captions == [["a man sings", "someone is singing"], ["cars race"]]
    assert test.videos.paths == [folder / "videos" / "video1.mp4", folder / "videos" / "video2.mp4"]
    assert test.attributes["video1"] == {"category": 9} and "split test" in test.split_note
    assert test.texts == ["a man sings", "someone is singing", "cars race"] and test.text_video_index == [0, 0, 1]
    every = load_video_data(data(format="msrvtt", annotations=annotations, videos=folder / "videos"), "captions")
    assert every.ids == ["video0", "video1", "video2"]
    with pytest.raises(DataError, match="no videos in split 'val' \\(splits: test, train\\)"):
        load_video_data(
            data(format="msrvtt", annotations=annotations, videos=folder / "videos", split="val"), "captions"
        )

    split_csv = folder / "MSRVTT_JSFUSION_test.csv"
    split_csv.write_text(
        "key,vid_key,video_id,sentence\nret0,msr2,video2,a red car drives\nret1,msr1,video1,a man sings\n"
    )
    one_k = load_video_data(data(format="msrvtt", split_csv=split_csv, videos=folder / "videos"), "captions")
    assert one_k.ids == ["video2", "video1"] and one_k.captions == [["a red car drives"], ["a man sings"]]
    assert "1k-A" in one_k.split_note and "MSRVTT_JSFUSION_test.csv" in one_k.split_note
    with pytest.raises(DataError, match="holds captions, not questions"):
        load_video_data(data(format="msrvtt", split_csv=split_csv, videos=folder / "videos"), "questions")


def test_msvd_text_and_corpus_csv(folder: Path) -> None:
    text = folder / "AllVideoDescriptions.txt"
    text.write_text("# MSVD\nclipA a squirrel eats\nclipB a man plays guitar\nclipA the squirrel is eating a nut\n")
    loaded = load_video_data(data(format="msvd", annotations=text, videos=folder / "videos"), "captions")
    assert loaded.ids == ["clipA", "clipB"]
    assert loaded.captions == [["a squirrel eats", "the squirrel is eating a nut"], ["a man plays guitar"]]
    assert loaded.videos.paths[0] == folder / "videos" / "clipA.avi"
    assert missing_videos(loaded) == [str(folder / "videos" / "clipB.avi")]
    corpus = folder / "corpus.csv"
    corpus.write_text("VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\n"
                      "abc,1,5,7,clean,10,English,A dog runs.\nabc,1,5,8,clean,12,French,Un chien court.\n"
                      "abc,1,5,9,clean,11,English,a dog is running\n")  # fmt: skip
    csv_loaded = load_video_data(data(format="msvd", annotations=corpus, videos=folder / "videos"), "captions")
    assert csv_loaded.ids == ["abc_1_5"] and csv_loaded.captions == [["A dog runs.", "a dog is running"]]
    bad = folder / "bad.txt"
    bad.write_text("clipA\n")
    with pytest.raises(DataError, match="bad.txt: line 1: expected `video_id caption`"):
        load_video_data(data(format="msvd", annotations=bad, videos=folder / "videos"), "captions")


def test_didemo_joins_a_videos_descriptions_into_one_paragraph(folder: Path) -> None:
    annotations = folder / "test_data.json"
    annotations.write_text(json.dumps([
        {"video": "flickr_1.mov", "description": "a girl waves", "times": [[0, 0]], "annotation_id": 1},
        {"video": "other.mov", "description": "a bus passes", "times": [[1, 1]], "annotation_id": 2},
        {"video": "flickr_1.mov", "description": "she runs off", "times": [[2, 3]], "annotation_id": 3}]))  # fmt: skip
    loaded = load_video_data(data(format="didemo", annotations=annotations, videos=folder / "videos"), "captions")
    assert loaded.ids == ["flickr_1.mov", "other.mov"]
    assert loaded.captions == [["a girl waves she runs off"], ["a bus passes"]]
    assert loaded.videos.paths[0] == folder / "videos" / "flickr_1.mp4"  # the released file's suffix is found
    annotations.write_text(json.dumps([{"video": "x"}]))
    with pytest.raises(DataError, match="item 0: expected"):
        load_video_data(data(format="didemo", annotations=annotations, videos=folder / "videos"), "captions")


def test_manifest_in_json_jsonl_and_csv_for_every_form(folder: Path) -> None:
    records = [
        {"video": "video0.mp4", "caption": "a cat", "question": "what animal?", "answers": ["cat", "kitten"],
         "type": "object", "label": "animal", "attributes": {"light": "day"}},
        {"video": "video1.mp4", "captions": ["a car", "a red car"], "question": "what colour?", "answer": "red",
         "type": "color", "label": "vehicle"},
    ]  # fmt: skip
    as_json = folder / "manifest.json"
    as_json.write_text(json.dumps(records))
    as_jsonl = folder / "manifest.jsonl"
    as_jsonl.write_text("\n".join(json.dumps(r) for r in records))
    for path in (as_json, as_jsonl):
        cfg = data(format="video_manifest", annotations=path, videos=folder / "videos")
        caps = load_video_data(cfg, "captions")
        assert caps.captions == [["a cat"], ["a car", "a red car"]] and caps.attributes == {
            "video0.mp4": {"light": "day"}
        }
        qa = load_video_data(cfg, "questions")
        assert (
            isinstance(qa, VideoQAData)
            and qa.answers == [["cat", "kitten"], ["red"]]
            and qa.types == ["object", "color"]
        )
        assert qa.video_index == [0, 1] and qa.choices is None
        classes = load_video_data(cfg, "classes")
        assert (
            isinstance(classes, VideoClassData)
            and classes.classnames == ["animal", "vehicle"]
            and classes.labels == [0, 1]
        )
    as_csv = folder / "manifest.csv"
    as_csv.write_text(
        "video,question,choices,answer,type,attr_light\n"
        "video0.mp4,which way?,left|right|up,right,direction,day\n"
        "video0.mp4,how many?,one|two,1,count,day\nvideo1.mp4,which way?,left|right,left,direction,night\n"
    )
    mc = load_video_data(data(format="video_manifest", annotations=as_csv), "choice_questions")
    assert mc.choices == [["left", "right", "up"], ["one", "two"], ["left", "right"]]
    assert mc.answers == [["right"], ["two"], ["left"]] and mc.video_index == [0, 0, 1]
    assert mc.videos.paths[0] == folder / "video0.mp4"  # relative to the manifest without data.videos
    assert mc.attributes == {"video0.mp4": {"light": "day"}, "video1.mp4": {"light": "night"}}
    limited = load_video_data(data(format="video_manifest", annotations=as_csv, limit=1), "choice_questions")
    assert len(limited.videos) == 1 and limited.questions == ["which way?", "how many?"]
    as_csv.write_text("video,question,choices,answer\nvideo0.mp4,which way?,left|right,down\n")
    with pytest.raises(DataError, match="record 0: 'answer' must be one of the choices"):
        load_video_data(data(format="video_manifest", annotations=as_csv), "choice_questions")


def write_frames(folder: Path, n: int, level: int = 0) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((12, 10, 3), level + i * 20, np.uint8)).save(folder / f"frame{i + 1}.png")


def test_frame_folders_as_class_folders_and_with_a_manifest(tmp_path: Path) -> None:
    root = tmp_path / "frames"
    write_frames(root / "jump" / "v1", 12)
    write_frames(root / "run" / "v2", 3)
    classes = load_video_data(data(format="frame_folders", root=root), "classes")
    assert classes.classnames == ["jump", "run"] and classes.labels == [0, 1] and classes.ids == ["jump/v1", "run/v2"]
    clip = read_clip(classes.videos.paths[0], FrameSampling(frames=4))
    # 12 frames at 25 fps: instants (k + 0.5) * 0.12, frames 1, 4, 7, 10 in natural order (frame10 after frame9)
    assert [int(f.mean()) // 20 for f in clip.frames] == [1, 4, 7, 10] and clip.frames.shape == (4, 12, 10, 3)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"video": "jump/v1", "caption": "someone jumps"}]))
    caps = load_video_data(data(format="frame_folders", root=root, annotations=manifest), "captions")
    assert caps.videos.paths == [root / "jump" / "v1"] and caps.captions == [["someone jumps"]]
    with pytest.raises(DataError, match="class labels only"):
        load_video_data(data(format="frame_folders", root=root), "captions")


def test_hf_video_reads_a_datasets_dataset_with_a_video_path_column(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features({"video": datasets.Value("string"), "caption": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["left", "right"])})  # fmt: skip
    saved = tmp_path / "ds"
    datasets.Dataset.from_dict({"video": ["a.mp4", "/abs/b.mp4"], "caption": ["one", "two"], "label": [1, 0]},
                               features=features).save_to_disk(str(saved))  # fmt: skip
    caps = load_video_data(data(format="hf_video", path=str(saved)), "captions")
    assert caps.captions == [["one"], ["two"]] and caps.videos.paths == [saved / "a.mp4", Path("/abs/b.mp4")]
    classes = load_video_data(data(format="hf_video", path=str(saved)), "classes")
    assert classes.classnames == ["left", "right"] and classes.labels == [1, 0]
    with pytest.raises(DataError, match="no column 'clip'"):
        load_video_data(data(format="hf_video", path=str(saved), video_column="clip"), "captions")


def test_shapes_video_is_deterministic_with_disjoint_splits_and_true_annotations(tmp_path: Path) -> None:
    specs = {split: [shapes_video.split_spec(split, 0, i) for i in range(300)] for split in ("train", "val", "test")}
    assert not set(map(repr, specs["train"])) & set(map(repr, specs["test"]))
    assert not set(map(repr, specs["val"])) & set(map(repr, specs["test"]))
    assert specs["test"][:5] == [shapes_video.split_spec("test", 0, i) for i in range(5)]
    assert {s.direction for s in specs["test"]} == set(shapes_video.DIRECTIONS)
    captions = shapes_video.load_shapes_video_captions("test", 4, folder=tmp_path)
    again = shapes_video.load_shapes_video_captions("test", 4, folder=tmp_path / "other")
    assert captions.captions == again.captions and captions.annotation_digest == again.annotation_digest
    assert all(len(set(c)) == 5 for c in captions.captions)
    assert [p.read_bytes() for p in captions.videos.paths] == [p.read_bytes() for p in again.videos.paths]
    for spec, caps, path in zip(specs["test"], captions.captions, captions.videos.paths):
        assert all(spec.color in c for c in caps)
        clip = read_clip(path, FrameSampling(frames=2))
        assert clip.info["frames"] == shapes_video.N_FRAMES and clip.info["width"] == shapes_video.SIZE
        query, others = shapes_video.motion_query(spec)
        assert len(others) == 3 and query not in others and query.startswith(f"A {spec.color} {spec.kind} moves ")
        assert {q.split(" moves ")[0] for q in others} == {query.split(" moves ")[0]}  # only the direction differs
    # the shape really moves that way: the centroid of non-background pixels, first vs last sampled frame
    spec, path = specs["test"][0], captions.videos.paths[0]
    frames = read_clip(path, FrameSampling(frames=2, mode="window", fps=1 / 1.5)).frames.astype(int)
    background = np.array(shapes_video.BACKGROUNDS[spec.background][1])
    centroids = [np.argwhere(np.abs(f - background).sum(-1) > 60).mean(0) for f in frames]
    dy, dx = centroids[1] - centroids[0]
    moved = {"left": -dx, "right": dx, "up": -dy, "down": dy}[spec.direction]
    assert moved > 5
    qa = shapes_video.load_shapes_video_qa("test", 4, folder=tmp_path, style="choice")
    assert all(a[0] in c for a, c in zip(qa.answers, qa.choices)) and qa.types == ["direction"] * 4
    classes = shapes_video.load_shapes_video_classes("test", 4, folder=tmp_path)
    assert [classes.classnames[label] for label in classes.labels] == [
        f"moving {s.direction}" for s in specs["test"][:4]
    ]


def test_video_format_fields_are_checked_per_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="folder not found"):
        data(format="msrvtt", videos=tmp_path / "nope")
    with pytest.raises(ValueError, match="n_videos"):
        data(format="msvd", annotations=__file__, videos=tmp_path, n_videos=3)
    assert data(format="shapes_video", n_videos=3).n_videos == 3

"""Audio-text retrieval metrics against a brute-force loop and a hand-computed example; SPIDEr by hand; the
synthetic shapes_audio set (deterministic, disjoint splits, real FLAC files); the AudioCaps / Clotho / ESC-50
readers on small files in their published layouts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from mmeval.data import shapes_audio
from mmeval.data.audio_formats import load_audiocaps, load_clotho, load_esc50
from mmeval.errors import DataError
from mmeval.metrics.audio_retrieval import audio_ranks, audio_retrieval_metrics, map_at_k
from mmeval.metrics.caption.scores import CaptionScores
from mmeval.tasks.audio_captioning.run import spider


def test_map_at_10_hand_computed() -> None:
    # ranks 1, 2, 10, 11, 4 -> AP@10 = 1, 1/2, 1/10, 0, 1/4 -> mean 1.85 / 5
    assert map_at_k(np.array([1, 2, 10, 11, 4])) == pytest.approx(1.85 / 5)
    assert map_at_k(np.array([11, 50])) == 0.0
    assert map_at_k(np.array([3]), k=2) == 0.0 and map_at_k(np.array([2]), k=2) == 0.5


def _brute_force(audio: np.ndarray, text: np.ndarray, owner: list[int]) -> tuple[list[int], list[int], list[float]]:
    """t2a rank (ties against the model), a2t best rank, and DCASE AP@10 as precision at the one relevant hit
    over min(1, 10) relevant items, all by explicit loops."""
    scores = text @ audio.T
    t2a, ap = [], []
    for q, clip in enumerate(owner):
        own = scores[q, clip]
        rank = 1 + sum(1 for c in range(len(audio)) if c != clip and scores[q, c] >= own)
        t2a.append(rank)
        retrieved = sorted(range(len(audio)), key=lambda c: (-scores[q, c], c != clip))[:10]
        hits, precision_sum = 0, 0.0
        for position, c in enumerate(retrieved, start=1):
            if c == clip:
                hits += 1
                precision_sum += hits / position
        ap.append(precision_sum / 1)
    a2t = []
    for clip in range(len(audio)):
        mine = [q for q, o in enumerate(owner) if o == clip]
        if not mine:
            continue
        best = max(scores[q, clip] for q in mine)
        others = sum(1 for q in range(len(text)) if owner[q] != clip and scores[q, clip] >= best)
        a2t.append(1 + others)
    return t2a, a2t, ap


def test_retrieval_metrics_match_a_brute_force_loop_with_any_number_of_captions() -> None:
    rng = np.random.default_rng(0)
    counts = [0, 1, 5, 3, 2, 1, 4, 5, 1, 2, 0, 3, 1, 1, 6, 2, 1]  # AudioCaps-like 1s, Clotho-like 5s, none
    owner = [clip for clip, n in enumerate(counts) for _ in range(n)]
    audio = F.normalize(torch.from_numpy(rng.normal(size=(len(counts), 6))), dim=-1)
    text = F.normalize(audio[owner] + 0.9 * torch.from_numpy(rng.normal(size=(len(owner), 6))), dim=-1)
    ranks = audio_ranks(audio, text, owner)
    captioned = np.array(counts) > 0
    ranks.i2t = ranks.i2t[captioned]
    t2a, a2t, ap = _brute_force(audio.numpy(), text.numpy(), owner)
    assert ranks.t2i.tolist() == t2a and ranks.i2t.tolist() == a2t
    m = audio_retrieval_metrics(ranks, [1, 5, 10])
    assert m["t2a_mAP@10"] == pytest.approx(np.mean(ap))
    assert m["t2a_R@5"] == pytest.approx(np.mean(np.array(t2a) <= 5))
    assert m["a2t_R@1"] == pytest.approx(np.mean(np.array(a2t) <= 1))
    assert m["a2t_median_rank"] == np.median(a2t) and m["t2a_mean_rank"] == pytest.approx(np.mean(t2a))
    assert 0 < m["t2a_mAP@10"] < 1 and not any("t2i" in k or "i2t" in k for k in m)


def test_ties_count_against_the_model() -> None:
    audio = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ranks = audio_ranks(audio, text, [1, 2])
    assert ranks.t2i.tolist() == [2, 1]  # clip 0 scores exactly as high as clip 1: it ranks above it
    assert map_at_k(ranks.t2i) == pytest.approx((0.5 + 1.0) / 2)


def test_spider_is_the_mean_of_cider_and_spice_per_clip_and_absent_without_spice() -> None:
    scores = CaptionScores(["a", "b"], {}, {"CIDEr": np.array([1.2, 0.4]), "SPICE": np.array([0.2, 0.1])}, "none")
    assert spider(scores).tolist() == pytest.approx([0.7, 0.25])
    assert spider(CaptionScores(["a"], {}, {"CIDEr": np.array([1.0])}, "none")) is None


# --- shapes_audio -------------------------------------------------------------------------------------------


def test_shapes_audio_is_deterministic_with_disjoint_splits_and_true_captions() -> None:
    assert shapes_audio.split_scene("test", 0, 7) == shapes_audio.split_scene("test", 0, 7)
    assert np.array_equal(
        shapes_audio.synthesize(shapes_audio.split_scene("val", 0, 3)),
        shapes_audio.synthesize(shapes_audio.split_scene("val", 0, 3)),
    )
    splits = {s: {repr(shapes_audio.split_scene(s, 0, i)) for i in range(150)} for s in shapes_audio.SPLIT_OFFSETS}
    assert not (splits["train"] & splits["test"]) and not (splits["val"] & splits["test"])
    scenes = [shapes_audio.split_scene("test", 0, i) for i in range(200)]
    assert {s.kind for s in scenes} == set(shapes_audio.KINDS) and {s.count for s in scenes} == {1, 2, 3, 4}
    number = {1: ("a ", "an ", "once", "single", "one"), 2: ("two", "twice"), 3: ("three",), 4: ("four",)}
    for scene in scenes[:40]:
        captions = shapes_audio.scene_captions(scene)
        assert len(set(captions)) == 5
        for caption in captions:  # every caption says how many events there are
            assert any(word in caption.lower() for word in number[scene.count]), caption
    with pytest.raises(DataError, match="unknown shapes_audio split 'dev'"):
        shapes_audio.split_scene("dev", 0, 0)


def test_synthesized_clips_have_the_events_their_attributes_say() -> None:
    for index in range(30):
        scene = shapes_audio.split_scene("test", 0, index)
        wave = shapes_audio.synthesize(scene)
        assert wave.dtype == np.float32 and len(wave) == round(scene.duration * shapes_audio.SAMPLE_RATE)
        peak = np.abs(wave).max()
        assert (peak > 0.45) == (scene.loudness == "loud"), scene
        frames = (
            np.abs(wave[: len(wave) // 160 * 160]).reshape(-1, 160).max(1) > 0.2
        )  # 10 ms frames (hiss peaks near 0.1)
        onsets = int(np.sum(frames[1:] & ~frames[:-1]) + frames[0])
        if scene.loudness == "loud" and scene.kind in ("tone", "chirp"):  # clicks and noise have inner gaps
            assert onsets == scene.count, scene


def test_flac_files_written_once_and_read_back(tmp_path) -> None:
    ids, scenes, paths = shapes_audio.clip_files("test", 6, 0, tmp_path)
    assert ids[0] == "test-000000" and all(p.suffix == ".flac" and p.is_file() for p in paths)
    samples, rate = sf.read(paths[2], dtype="float32")
    assert rate == 16000 and np.abs(samples - shapes_audio.synthesize(scenes[2])).max() < 1 / 32768 + 1e-7
    stamp = paths[0].stat().st_mtime_ns
    shapes_audio.clip_files("test", 6, 0, tmp_path)
    assert paths[0].stat().st_mtime_ns == stamp  # reused, not rewritten
    labels = shapes_audio.load_shapes_audio_classes("test", 6, 0, "count", tmp_path)
    assert [labels.classnames[l] for l in labels.labels] == [shapes_audio.COUNT_CLASSES[s.count - 1] for s in scenes]


# --- published formats ------------------------------------------------------------------------------------


def _wav(path, seconds: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)


def test_audiocaps_groups_caption_rows_by_clip(tmp_path) -> None:
    csv = tmp_path / "test.csv"
    csv.write_text(
        "audiocap_id,youtube_id,start_time,caption\n1,abc,30,A dog barks\n2,abc,30,Barking\n3,xyz,0,Rain falls\n"
    )
    cfg = SimpleNamespace(annotations=csv, root=tmp_path, file_pattern="Y{youtube_id}_{start_time}.wav")
    data = load_audiocaps(cfg)
    assert data.ids == ["Yabc_30", "Yxyz_0"] and data.captions == [["A dog barks", "Barking"], ["Rain falls"]]
    assert data.text_owner == [0, 0, 1] and str(data.audio.paths[1]).endswith("Yxyz_0.wav")
    with pytest.raises(DataError, match="holds captions, but this task reads labels"):
        load_audiocaps(cfg, "labels")
    bad = SimpleNamespace(annotations=csv, root=tmp_path, file_pattern="{ytid}.wav")
    with pytest.raises(DataError, match=r"test.csv row 2: file_pattern '\{ytid\}.wav' needs column 'ytid'"):
        load_audiocaps(bad)


def test_clotho_reads_five_caption_columns(tmp_path) -> None:
    csv = tmp_path / "clotho_captions_evaluation.csv"
    csv.write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        "a.wav,one,two,three,four,five\nb b.wav,x,y,z,w,v\n"
    )
    data = load_clotho(SimpleNamespace(annotations=csv, root=tmp_path))
    assert data.ids == ["a.wav", "b b.wav"] and data.captions[0] == ["one", "two", "three", "four", "five"]
    csv.write_text("name,caption\n")
    with pytest.raises(DataError, match="missing column\\(s\\) file_name, caption_1"):
        load_clotho(SimpleNamespace(annotations=csv, root=tmp_path))


def test_esc50_folds_and_class_order(tmp_path) -> None:
    meta = tmp_path / "meta" / "esc50.csv"
    meta.parent.mkdir()
    meta.write_text(
        "filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,1,0,dog,True,1,A\n"
        "2-1-A-1.wav,2,1,rooster,False,1,A\n1-2-A-1.wav,1,1,rooster,False,2,A\n5-9-A-40.wav,5,40,helicopter,False,9,A\n"
    )
    cfg = SimpleNamespace(annotations=meta, root=tmp_path / "audio", folds=[1])
    data = load_esc50(cfg)
    assert data.classnames == ["dog", "rooster", "helicopter"] and data.labels == [0, 1] and data.folds == [1, 1]
    assert data.ids == ["1-1-A-0.wav", "1-2-A-1.wav"]
    with pytest.raises(DataError, match=r"no clips in fold\(s\) \[3\]"):
        load_esc50(SimpleNamespace(annotations=meta, root=tmp_path, folds=[3]))


def test_urbansound8k_layout_reads_fold_folders(tmp_path) -> None:
    meta = tmp_path / "UrbanSound8K.csv"
    meta.write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "1-0-0.wav,1,0,1,1,3,0,air_conditioner\n2-0-0.wav,2,0,1,1,4,6,gun_shot\n"
    )
    data = load_esc50(SimpleNamespace(annotations=meta, root=tmp_path, folds=None))
    assert data.classnames == ["air conditioner", "gun shot"] and data.labels == [0, 1]
    assert str(data.audio.paths[0]).endswith("fold3/1-0-0.wav")


def test_hf_audio_captions_and_class_labels(tmp_path) -> None:
    import datasets

    from mmeval.data.audio_formats import load_hf_audio

    _, scenes, paths = shapes_audio.clip_files("test", 4, 0, tmp_path / "clips")
    captions = [shapes_audio.scene_captions(s) for s in scenes]
    classes = list(shapes_audio.SOUND_CLASSES)
    table = datasets.Dataset.from_dict({"audio": [str(p) for p in paths], "captions": captions,
                                        "sound": [classes.index(s.sound) for s in scenes]})  # fmt: skip
    table = table.cast_column("audio", datasets.Audio()).cast_column("sound", datasets.ClassLabel(names=classes))
    table.save_to_disk(str(tmp_path / "hf"))
    cfg = SimpleNamespace(path=str(tmp_path / "hf"), split=None, audio_column="audio", caption_column="captions",
                          label_column="sound")  # fmt: skip
    data = load_hf_audio(cfg, "captions")
    assert data.captions == captions and len(data.audio) == 4
    for index in range(4):  # the clips themselves, embedded or by path
        blob = data.audio.read(index)
        assert blob == paths[index].read_bytes()
    labels = load_hf_audio(cfg, "labels")
    assert labels.classnames == classes and labels.labels == [classes.index(s.sound) for s in scenes]
    with pytest.raises(DataError, match="data.caption_column 'text' is not a column"):
        load_hf_audio(SimpleNamespace(**{**vars(cfg), "caption_column": "text"}), "captions")

"""Tiny random speech models built offline and saved with save_pretrained (loaded through mmeval's real path).

- `save_whisper`: WhisperForConditionalGeneration (1 encoder + 1 decoder layer, d_model 32) + WhisperProcessor
  with a byte-level tokenizer and Whisper's special tokens, and a generation config that knows English and
  the two tasks, as a hub checkpoint's does.
- `save_ctc`: Wav2Vec2ForCTC (tiny conv stack, 2 layers) + Wav2Vec2Processor over a letter vocabulary.

Weights get a larger init and a sharpened output head (as tests/tiny_hf.py does for captioners) so outputs depend
on the audio and greedy choices are far from float-noise ties.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers

SPECIAL = ["<|startoftranscript|>", "<|en|>", "<|fr|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
           "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]


def save_whisper(folder: Path, seed: int = 0, init_std: float = 0.1, head: float = 4.0, chunk_seconds: int = 2) -> Path:
    from tokenizers import pre_tokenizers

    vocab = {"<|endoftext|>": 0}  # one token per byte, no merges: any text tokenises
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    end = "<|endoftext|>"
    tokenizer = transformers.WhisperTokenizer(vocab=vocab, merges=[], additional_special_tokens=SPECIAL,
                                              pad_token=end, unk_token=end, bos_token=end, eos_token=end)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL + ["<|endoftext|>"]}
    config = transformers.WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=chunk_seconds * 50, max_target_positions=448, init_std=init_std,
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"], suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    torch.manual_seed(seed)
    model = transformers.WhisperForConditionalGeneration(config)
    with torch.no_grad():
        model.model.decoder.layer_norm.weight.mul_(head)  # the head is tied to the embeddings
        model.model.encoder.layer_norm.weight.mul_(8.0)  # louder encoder states: transcripts follow the audio
    generation = model.generation_config
    generation.decoder_start_token_id = ids["<|startoftranscript|>"]
    generation.eos_token_id = ids["<|endoftext|>"]
    generation.pad_token_id = ids["<|endoftext|>"]
    generation.is_multilingual = True
    generation.lang_to_id = {"<|en|>": ids["<|en|>"], "<|fr|>": ids["<|fr|>"]}
    generation.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    generation.no_timestamps_token_id = ids["<|notimestamps|>"]
    generation.forced_decoder_ids = None
    generation.suppress_tokens = []
    generation.begin_suppress_tokens = []
    generation.max_length = 448
    generation._from_model_config = False  # else from_pretrained rebuilds it from config.json, losing the above
    features = transformers.WhisperFeatureExtractor(feature_size=80, chunk_length=chunk_seconds)
    processor = transformers.WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


LETTERS = list("abcdefghijklmnopqrstuvwxyz'")


def save_ctc(folder: Path, seed: int = 0) -> Path:
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(LETTERS)}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), pad_token="<pad>", unk_token="<unk>",
                                                  word_delimiter_token="|")
    features = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                                     do_normalize=True, return_attention_mask=True)
    config = transformers.Wav2Vec2Config(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True,
        pad_token_id=0, initializer_range=0.2, ctc_loss_reduction="mean", apply_spec_augment=False,
    )
    torch.manual_seed(seed)
    model = transformers.Wav2Vec2ForCTC(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(folder)
    transformers.Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    return folder

"""open_clip models: an architecture name (or a config JSON of one) plus a local checkpoint or pretrained tag.

The model comes with open_clip's own evaluation preprocessing and tokenizer, exactly as CLIP_benchmark
uses them, so numbers are comparable with published ones. A checkpoint file is read as safetensors or with
`torch.load(weights_only=True)`; a pickle that needs code is refused unless `--trust-checkpoint`
(`mmeval.models.safe_load`); with `--trust-checkpoint` a whole pickled model (`torch.save(model)`) gives its
state dict. A damaged file, or weights of another architecture, get one line saying which
(`checkpoint_files`, `open_clip_fit`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mmeval.errors import ModelLoadError
from mmeval.io.pixels import from_torchvision_compose
from mmeval.models import checkpoint_files, open_clip_fit, safe_load
from mmeval.models.base import ModelInfo, Tokens, describe_load_error
from mmeval.registry import did_you_mean


class OpenClipEncoder:
    """`image_text_encoder` capability over an open_clip CLIP model.

    Texts are encoded without their padding when that cannot change the result: open_clip pads every caption
    to 77 tokens, but in a CLIP text tower with a causal attention mask, read at the end-of-text token
    (`text_pool_type` argmax), no position before the end of a caption sees what follows it. Cutting the
    batch's all-padding columns then gives the same embeddings with a fraction of the work (COCO captions
    are about 15 tokens: text encoding was 77% of a CPU retrieval run). Other text towers run whole.
    """

    # open_clip's towers run with their weights stored in bf16 under CPU autocast (see runtime.match_weights);
    # modules with norm layers fed fp32 inputs (e.g. the reference model's stem) do not, so it is opt-in
    bf16_weights_on_cpu = True

    def __init__(self, model: torch.nn.Module, preprocess, tokenizer, info: ModelInfo):
        self.module = model
        self.image_transform = preprocess
        self.pixel_pipeline = from_torchvision_compose(preprocess)  # None: an unusual transform, run whole
        self._tokenizer = tokenizer
        self.info = info
        self.trims_padding = _padding_is_inert(model)

    def tokenize(self, texts: list[str]) -> Tokens:
        return self._tokenizer(texts)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(pixels)

    def encode_text(self, tokens: Tokens) -> torch.Tensor:
        if not self.trims_padding:
            return self.module.encode_text(tokens)
        return _encode_text_prefix(self.module, tokens[:, : _used_columns(tokens)])


def _padding_is_inert(model: torch.nn.Module) -> bool:
    """True for open_clip's CLIP class with a causal text mask and end-of-text pooling (padding id 0)."""
    from open_clip.model import CLIP

    mask = getattr(model, "attn_mask", None)
    if not isinstance(model, CLIP) or mask is None or getattr(model, "text_pool_type", None) != "argmax":
        return False
    return bool(torch.isneginf(mask.triu(1)).sum() == mask.shape[0] * (mask.shape[0] - 1) // 2)


def _used_columns(tokens: torch.Tensor) -> int:
    """1 + the last column holding a non-padding (non-zero) token in any row."""
    used = (tokens != 0).any(dim=0).nonzero()
    return int(used[-1]) + 1 if len(used) else 1


def _encode_text_prefix(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's CLIP text tower on the first L = tokens.shape[1] positions: its position embeddings and
    causal mask cut to L, the rest as `CLIP.encode_text` computes it."""
    length = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # the end-of-text token
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def _loaded_with(cfg, weights_only: bool) -> str:
    """How open_clip read the weights (see mmeval.models.safe_load)."""
    pickled = safe_load.WEIGHTS_ONLY if weights_only else safe_load.TRUSTED_PICKLE
    if cfg.checkpoint is None:  # a hub tag or an hf-hub: / local-dir: architecture: open_clip picks the file
        return f"open_clip pretrained ({safe_load.SAFETENSORS} or {pickled})"
    suffix = Path(cfg.checkpoint).suffix
    if suffix == ".safetensors":
        return safe_load.SAFETENSORS
    return "numpy .npz (big_vision)" if suffix in (".npz", ".npy") else pickled


def _local_pickle(cfg) -> Path | None:
    """The config's checkpoint when it is a local torch pickle (not safetensors, numpy or a folder)."""
    path = Path(cfg.checkpoint) if cfg.checkpoint else None
    if path is None or not path.is_file() or path.suffix in (".safetensors", ".npz", ".npy"):
        return None
    return path


def _create_trusted(cfg, path: Path, read: dict):
    """open_clip's model from a trusted pickle: unpickled once here, its tensors (a whole pickled model's
    `state_dict()`, a training checkpoint's 'state_dict') written to a temporary file open_clip then reads
    weights-only, so its own conversions (resized position embeddings, old formats) still apply."""
    import tempfile

    import open_clip

    tensors = safe_load.state_dict_in(torch.load(path, map_location="cpu", weights_only=False), path)
    read["shapes"] = open_clip_fit.shapes_of(tensors)
    with tempfile.TemporaryDirectory(prefix="mmeval-trusted-") as folder:
        plain = Path(folder) / "state_dict.pt"
        torch.save(tensors, plain)
        del tensors
        return open_clip.create_model_and_transforms(cfg.arch, pretrained=str(plain), device="cpu", weights_only=True)


def _create(cfg, pretrained: str | None, trust_checkpoint: bool, read: dict):
    """open_clip's model and eval preprocessing, weights read without running pickled code unless trusted:
    a weights-only load is tried first, so a trusted run still records the safe path when it sufficed.
    `read` receives the checkpoint's tensor shapes when they were read here (to explain a misfit)."""
    import open_clip

    def create(weights_only: bool):
        trusted = None if weights_only else _local_pickle(cfg)
        if trusted is not None:
            return _create_trusted(cfg, trusted, read)
        return open_clip.create_model_and_transforms(cfg.arch, pretrained=pretrained, device="cpu",
                                                     weights_only=weights_only)  # fmt: skip

    (model, _, preprocess), safe = safe_load.weights_only_first(create, pretrained, trust_checkpoint)
    return model, preprocess, _loaded_with(cfg, weights_only=safe)


def _load_error(cfg, pretrained: str | None, exc: BaseException, read: dict) -> ModelLoadError:
    """One line for a failed open_clip load: a damaged file, a checkpoint that fits another architecture
    (counts, examples, the registered one it fits), or open_clip's own first line."""
    path = Path(cfg.checkpoint) if cfg.checkpoint else None
    if path is not None and path.is_file():
        damaged = checkpoint_files.read_failure(path, exc)
        if damaged is not None:
            return damaged
    if not isinstance(exc, (RuntimeError, AssertionError)):  # open_clip raises bare exceptions for unknown tags
        return ModelLoadError(f"model.checkpoint: cannot load {pretrained} for '{cfg.arch}' ({describe_load_error(exc)})")
    misfit = None
    if path is not None and path.is_file():
        try:
            have = read.get("shapes") or open_clip_fit.read_shapes(path)
        except Exception:  # shapes unreadable weights-only: say what open_clip said
            have = None
        want = open_clip_fit.architecture_shapes(cfg.arch) if have else None
        if want is not None and open_clip_fit.compare(have, want).count:
            misfit = open_clip_fit.describe(cfg.arch, have, want)
    return ModelLoadError(f"model.checkpoint: {pretrained} "
                          + (misfit or f"does not fit open_clip architecture '{cfg.arch}': {describe_load_error(exc)}"))


def load(cfg, trust_checkpoint: bool = False) -> OpenClipEncoder:
    """Registry entry point; a pickled checkpoint that needs code is refused unless `trust_checkpoint`."""
    import open_clip

    if cfg.arch_config is not None:
        open_clip.add_model_config(cfg.arch_config)  # registered under the file's stem
    known = open_clip.list_models()
    if cfg.arch not in known and not cfg.arch.startswith(("hf-hub:", "local-dir:")):
        raise ModelLoadError(
            f"model.arch: unknown open_clip architecture '{cfg.arch}'.{did_you_mean(cfg.arch, known)} "
            f"(`python -c 'import open_clip; print(open_clip.list_models())'` lists them; "
            f"a custom one can be given with model.arch_config)"
        )
    pretrained = str(cfg.checkpoint) if cfg.checkpoint else cfg.pretrained
    if cfg.checkpoint:
        checkpoint_files.check_file(cfg.checkpoint)  # a damaged or wrong file, before any model is built
    read: dict = {}
    try:
        model, preprocess, loaded_with = _create(cfg, pretrained, trust_checkpoint, read)
    except ModelLoadError:
        raise
    except Exception as exc:  # open_clip asserts on some shape changes, raises bare exceptions for others
        raise _load_error(cfg, pretrained, exc, read) from exc
    name = cfg.name or (f"{cfg.arch}:{Path(str(pretrained)).name}" if pretrained else cfg.arch)
    info = ModelInfo.of_checkpoint("open_clip", name, cfg.checkpoint, model, arch=cfg.arch,
                                   open_clip_version=open_clip.__version__, loaded_with=loaded_with)
    if not cfg.checkpoint:
        info.checkpoint = cfg.pretrained  # a pretrained tag: open_clip's own download, not a file to hash
    return OpenClipEncoder(model, preprocess, open_clip.get_tokenizer(cfg.arch), info)

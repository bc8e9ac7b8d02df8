"""The reference model's captioning head: a small transformer decoder over the image encoder's patch tokens.

`CaptionDecoder` is the classic multimodal decoder (as in CoCa / BLIP): token and position embeddings, then
pre-norm layers of causal self-attention, cross-attention to the image tokens and an MLP, then a LayerNorm and a
linear head over the vocabulary. `forward` is the teacher-forced pass used in training; `start` / `step` decode
one token at a time with a key-value cache (the image tokens' keys and values are computed once per batch).

Decoding (`greedy`, `beam_search`) returns token ids per image. Every row of a batch is computed on its own
(no attention or normalisation across rows, beams of one image only ever select among themselves), so an
image's caption does not depend on the other images of its batch; see `reference.py` for the one numerical
caveat (matrix-multiply kernels that change with the number of rows) and how it is avoided.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class Attention(nn.Module):
    """Multi-head attention with separate query and key/value projections (so keys/values can be cached)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(width, width)
        self.kv_proj = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, width)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, t, w = x.shape
        return x.view(n, t, self.heads, w // self.heads).transpose(1, 2)  # (N, heads, T, head_dim)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv_proj(x).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        # plain matmuls, not F.scaled_dot_product_attention: its CPU kernel splits long keys across threads
        # when batch x heads is small, so a row's result would depend on the batch size
        q = self._split(self.q_proj(x))
        weights = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if causal:
            t = weights.shape[-1]
            weights = weights.masked_fill(torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1), -torch.inf)
        out = weights.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).flatten(2))


class DecoderLayer(nn.Module):
    """Pre-norm: x + self-attention (causal), x + cross-attention to the image, x + MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.self_attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.cross_attn = Attention(width, heads)
        self.ln_3 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.self_attn(h, *self.self_attn.keys_values(h), causal=True)
        x = x + self.cross_attn(self.ln_2(x), *memory, causal=False)
        return x + self.mlp(self.ln_3(x))

    def step(self, x: torch.Tensor, cache: LayerCache, position: int) -> torch.Tensor:
        """One new position (x: (N, 1, width)); appends its keys/values to the cache."""
        h = self.ln_1(x)
        k, v = self.self_attn.keys_values(h)
        cache.k[:, :, position] = k[:, :, 0]
        cache.v[:, :, position] = v[:, :, 0]
        past = slice(0, position + 1)
        x = x + self.self_attn(h, cache.k[:, :, past], cache.v[:, :, past], causal=False)
        x = x + self.cross_attn(self.ln_2(x), cache.memory_k, cache.memory_v, causal=False)
        return x + self.mlp(self.ln_3(x))


@dataclass
class LayerCache:
    """One layer's cached keys/values: the image tokens' (fixed) and the generated prefix's (growing)."""

    memory_k: torch.Tensor  # (N, heads, image tokens, head_dim)
    memory_v: torch.Tensor
    k: torch.Tensor  # (N, heads, max positions, head_dim)
    v: torch.Tensor

    def reorder(self, rows: torch.Tensor) -> LayerCache:
        """The prefix keys/values of `rows`; the image's stay, as each row keeps an image of its own."""
        return LayerCache(self.memory_k, self.memory_v, self.k.index_select(0, rows), self.v.index_select(0, rows))


@dataclass
class DecoderCache:
    """Everything `CaptionDecoder.step` needs besides the next token: per-layer caches and the position."""

    layers: list[LayerCache]
    position: int = 0

    def reorder(self, rows: torch.Tensor) -> DecoderCache:
        """Beam reordering: row i continues the prefix of row rows[i], which must hold the same image."""
        return DecoderCache([layer.reorder(rows) for layer in self.layers], self.position)


class CaptionDecoder(nn.Module):
    """Token ids + image tokens -> next-token logits; `context_length` positions at most ([BOS] included)."""

    def __init__(
        self, vocab_size: int, width: int, layers: int, heads: int, mlp_ratio: float, context_length: int,
        memory_width: int,
    ):  # fmt: skip
        super().__init__()
        self.context_length = context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.memory_proj = nn.Linear(memory_width, width)
        self.layers = nn.ModuleList(DecoderLayer(width, heads, mlp_ratio) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, image_tokens: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: (N, M, memory_width), (N, T) -> (N, T, vocab) logits of the token after each one."""
        memory = self.memory_proj(image_tokens)
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        for layer in self.layers:
            x = layer(x, layer.cross_attn.keys_values(memory))
        return self.head(self.ln_final(x))

    def start(self, image_tokens: torch.Tensor, positions: int) -> DecoderCache:
        """An empty cache for decoding `positions` tokens ([BOS] included) after the given image tokens."""
        if positions > self.context_length:
            raise ValueError(f"{positions} positions asked, the decoder has {self.context_length}")
        memory = self.memory_proj(image_tokens)
        caches = []
        for layer in self.layers:
            k, v = layer.cross_attn.keys_values(memory)
            shape = (k.shape[0], k.shape[1], positions, k.shape[3])
            caches.append(LayerCache(k, v, k.new_zeros(shape), v.new_zeros(shape)))
        return DecoderCache(caches)

    def step(self, cache: DecoderCache, tokens: torch.Tensor) -> torch.Tensor:
        """(N,) tokens at the cache's position -> (N, vocab) logits of the next token; advances the cache."""
        x = self.token_embedding(tokens[:, None]) + self.positional_embedding[cache.position]
        for layer, layer_cache in zip(self.layers, cache.layers):
            x = layer.step(x, layer_cache, cache.position)
        cache.position += 1
        return self.head(self.ln_final(x))[:, 0]


# --- decoding --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """What decoding needs to know: special ids, tokens never generated, and the generation settings."""

    bos: int
    eos: int
    banned: tuple[int, ...]  # never generated ([PAD], [UNK], [BOS])
    max_new_tokens: int
    min_new_tokens: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0


def next_token_logprobs(logits: torch.Tensor, search: Search, step: int) -> torch.Tensor:
    """log-softmax over the vocabulary without the banned tokens; [EOS] is -inf before `min_new_tokens`
    (after normalisation, as HF's MinLengthLogitsProcessor does)."""
    logits = logits.clone()
    logits[:, list(search.banned)] = -torch.inf
    logprobs = logits.log_softmax(dim=-1)
    if step < search.min_new_tokens:
        logprobs[:, search.eos] = -torch.inf
    return logprobs


def greedy(decoder: CaptionDecoder, image_tokens: torch.Tensor, search: Search) -> torch.Tensor:
    """(N, max_new_tokens) ids: the most likely token at each step (ties: the lowest id); [EOS] then [EOS]s."""
    n, device = image_tokens.shape[0], image_tokens.device
    cache = decoder.start(image_tokens, search.max_new_tokens)
    out = torch.full((n, search.max_new_tokens), search.eos, dtype=torch.long, device=device)
    token = torch.full((n,), search.bos, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    for step in range(search.max_new_tokens):
        token = next_token_logprobs(decoder.step(cache, token), search, step).argmax(dim=-1)
        token = token.masked_fill(finished, search.eos)
        out[:, step] = token
        finished |= token == search.eos
        if finished.all():
            break
    return out


def beam_search(decoder: CaptionDecoder, image_tokens: torch.Tensor, search: Search) -> torch.Tensor:
    """(N, max_new_tokens) ids of each image's best beam, padded with [EOS].

    HF's beam search (early_stopping=False): each step ranks the num_beams x vocab continuations of an image by
    summed log-probability (ties: lower beam, then lower id); of the best 2 x num_beams, those ending in [EOS]
    within the first num_beams become finished hypotheses, the first num_beams others the next beams. A finished
    hypothesis scores sum / length**length_penalty, length = generated tokens with [EOS]; an image keeps its
    num_beams best. It is done when it has num_beams of them and the worst beats the best live beam's score
    divided by the live length**length_penalty; beams still live after max_new_tokens are scored the same way
    (without [EOS]). The caption is the best finished hypothesis.
    """
    n, k, steps, device = image_tokens.shape[0], search.num_beams, search.max_new_tokens, image_tokens.device
    cache = decoder.start(image_tokens.repeat_interleave(k, dim=0), steps)
    rows = torch.arange(n, device=device)[:, None] * k  # each image's first row in the (n * k) decoding batch
    first_k = torch.arange(2 * k, device=device) < k
    scores = torch.full((n, k), -torch.inf, device=device)
    scores[:, 0] = 0.0  # one live beam to start with: the others are copies and must not be picked
    beams = torch.full((n, k, steps), search.eos, dtype=torch.long, device=device)
    done_scores = torch.full((n, k), -torch.inf, device=device)  # finished hypotheses, best first
    done_tokens = beams.clone()
    done = torch.zeros(n, dtype=torch.bool, device=device)
    token = torch.full((n * k,), search.bos, dtype=torch.long, device=device)
    for step in range(steps):
        logprobs = next_token_logprobs(decoder.step(cache, token), search, step)
        vocab = logprobs.shape[1]
        candidates = (scores[:, :, None] + logprobs.view(n, k, vocab)).view(n, k * vocab)
        order = torch.sort(candidates, dim=1, descending=True, stable=True).indices[:, : 2 * k]
        top, beam, word = candidates.gather(1, order), order // vocab, order % vocab
        prefix = beams.gather(1, beam[:, :, None].expand(-1, -1, steps))  # (n, 2k, steps)
        prefix[:, :, step] = word
        # finished: [EOS] within the first k candidates, of an image still searching
        ends = (word == search.eos) & first_k & ~done[:, None] & (top > -torch.inf)
        normalised = torch.where(ends, top / float(step + 1) ** search.length_penalty, -torch.inf)
        done_scores, done_tokens = _keep_best(done_scores, done_tokens, normalised, prefix, k)
        # live: the first k candidates not ending in [EOS] (there are always k: one [EOS] per beam at most)
        live = torch.sort((word == search.eos).int(), dim=1, stable=True).indices[:, :k]
        scores, beams = top.gather(1, live), prefix.gather(1, live[:, :, None].expand(-1, -1, steps))
        bound = scores[:, 0] / float(step + 1) ** search.length_penalty
        done |= (done_scores[:, -1] > -torch.inf) & (done_scores[:, -1] >= bound)
        if bool(done.all()) or step == steps - 1:
            break
        token = beams[:, :, step].reshape(-1)
        cache = cache.reorder((rows + beam.gather(1, live)).reshape(-1))
    final = torch.where(done[:, None], -torch.inf, scores / float(step + 1) ** search.length_penalty)
    done_scores, done_tokens = _keep_best(done_scores, done_tokens, final, beams, k)
    return done_tokens[:, 0]


def _keep_best(
    scores: torch.Tensor, tokens: torch.Tensor, new_scores: torch.Tensor, new_tokens: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge new hypotheses into each image's k best (kept ones win ties, as HF keeps them)."""
    merged = torch.cat([scores, new_scores], dim=1)
    best = torch.sort(merged, dim=1, descending=True, stable=True).indices[:, :k]
    all_tokens = torch.cat([tokens, new_tokens], dim=1)
    return merged.gather(1, best), all_tokens.gather(1, best[:, :, None].expand(-1, -1, tokens.shape[2]))

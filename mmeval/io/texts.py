"""Texts as an input source: tokenised by the model, in batches of similar length.

Batching texts of similar length lets adapters that drop padding (open_clip) cut most of it; the length used
is the character count, a cheap stand-in for the token count. Tokenisation counts as data time.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from mmeval.io.source import Batch

if TYPE_CHECKING:
    from mmeval.engine.timing import Timer


def digest(values: Any) -> str:
    """sha256 of a JSON-able value: what identifies texts or prompts in cache keys."""
    return hashlib.sha256(json.dumps(values, ensure_ascii=False, default=str).encode()).hexdigest()


class TextSource:
    """A list of texts as an `InputSource`."""

    def __init__(self, texts: list[str]):
        self.texts = texts

    def __len__(self) -> int:
        return len(self.texts)

    def describe(self, index: int) -> str:
        return f"text {index} {self.texts[index][:60]!r}"

    def fingerprint(self) -> str:
        return digest(self.texts)


class TextBatches:
    """The `BatchLoader` of a text pass: `tokenize(texts)` of `batch_size` texts at a time, shortest first."""

    def __init__(self, texts: list[str], tokenize: Callable[[list[str]], Any], batch_size: int):
        self.source, self.tokenize, self.batch_size = TextSource(texts), tokenize, batch_size

    def order(self) -> list[int]:
        texts = self.source.texts
        return sorted(range(len(texts)), key=lambda i: len(texts[i]))

    def cache_parts(self) -> dict[str, Any]:
        return {"texts": self.source.fingerprint(), "n_texts": len(self.source)}

    def batches(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        for start in range(0, len(indices), self.batch_size):
            began = time.perf_counter()
            batch = indices[start : start + self.batch_size]  # in length order already (the pass's order)
            tokens = self.tokenize([self.source.texts[i] for i in batch])
            timer.data_s += time.perf_counter() - began
            yield Batch(batch, tokens)

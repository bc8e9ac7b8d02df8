"""One model pass over the indices of a source, shared across ranks and resumable after a crash.

A pass's order (`BatchLoader.order`: images in source order, texts by length) is cut into batches of
`runtime.batch_size`. The batches are the unit of work: a data-parallel run gives each rank whole batches
(`distributed.shard`), and a run persists its finished batches as it goes, in chunks of at least
`runtime.chunk_size` rows, under the cache folder and the same key as the pass's output-cache entry
(`chunks/<key>/`, one file per chunk, written to a temporary name and renamed: a `kill -9` loses at most the
chunk in flight). With `--resume`, rank 0 reads the chunks an earlier run left and only the batches they do
not cover are run again. Since every model call then sees exactly the rows it sees in an uninterrupted
single-process run, the outputs are the same, bit for bit on the same hardware. When the pass is done, rank 0
merges everything by source index, writes the ordinary output-cache entry and removes the chunks.

A chunk is a `Part`: the source indices it went through, which of them were readable (with one output row
or item each), which were not (with the reason) and the raw-byte digests, so a resumed or sharded pass
reports the same skipped items and dataset digest as a single run. `model_pass.py` runs every pass this way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mmeval.engine.cache import entry_key
from mmeval.files import atomic_write

log = logging.getLogger(__name__)
_SUFFIX = ".chunk.safetensors"


@dataclass
class Part:
    """A pass's results over some of its source indices."""

    covered: list[int] = field(default_factory=list)  # every index gone through, readable or not
    ok: list[int] = field(default_factory=list)  # readable ones; each has one row of `rows` / item of `items`
    bad: list[tuple[int, str]] = field(default_factory=list)  # (index, reason) of unreadable items
    digests: dict[int, str] = field(default_factory=dict)  # sha256 hex of each item's raw bytes
    rows: torch.Tensor | None = None  # (len(ok), d) embeddings
    items: list[Any] | None = None  # one JSON-able output per ok index (a caption, an image's answers)

    def findings(self) -> Part:
        """What the pass found, without its outputs (what ranks other than 0 need)."""
        return replace(self, rows=None, items=None)

    def meta(self) -> dict[str, Any]:
        """The findings, JSON-able (as `ImagePass.to_meta` writes them)."""
        digests = {str(i): d for i, d in self.digests.items()}
        return {"ok": self.ok, "bad": [list(b) for b in self.bad], "digests": digests}

    def to_json(self) -> dict[str, Any]:
        return {**self.meta(), "covered": self.covered, "items": self.items}

    @classmethod
    def from_json(cls, value: dict[str, Any], rows: torch.Tensor | None) -> Part:
        return cls([int(i) for i in value["covered"]], [int(i) for i in value["ok"]],
                   [(int(i), str(r)) for i, r in value["bad"]], {int(i): d for i, d in value["digests"].items()},
                   rows, value["items"])  # fmt: skip


def merge(parts: list[Part], device: torch.device) -> Part:
    """One part from several, ordered by source index; where two cover the same index the later one wins."""
    where: dict[int, tuple[int, int]] = {}  # ok index -> (part, row)
    bad: dict[int, str] = {}
    covered: set[int] = set()
    digests: dict[int, str] = {}
    for number, part in enumerate(parts):
        covered.update(part.covered)
        digests.update(part.digests)
        for row, index in enumerate(part.ok):
            where[index] = (number, row)
            bad.pop(index, None)
        for index, reason in part.bad:
            bad[index] = reason
            where.pop(index, None)
    ok = sorted(where)
    merged = Part(sorted(covered), ok, sorted(bad.items()), {i: digests[i] for i in sorted(digests)})
    if any(part.rows is not None for part in parts):
        stacked = [p.rows.to(device) if p.rows is not None else torch.empty(0, 0, device=device) for p in parts]
        starts = [0]
        for rows in stacked:
            starts.append(starts[-1] + len(rows))
        width = max(rows.shape[1] for rows in stacked if len(rows)) if any(len(r) for r in stacked) else 0
        whole = torch.cat([rows for rows in stacked if len(rows)]) if width else torch.empty(0, 0, device=device)
        position = torch.tensor([starts[where[i][0]] + where[i][1] for i in ok], dtype=torch.long, device=device)
        merged.rows = whole[position] if len(ok) else whole[:0]
    if any(part.items is not None for part in parts):
        merged.items = [parts[where[i][0]].items[where[i][1]] for i in ok]
    return merged


class ChunkStore:
    """The chunks of one pass (one cache key): `cache_dir/chunks/<key[:2]>/<key>/*.chunk.safetensors`, each
    holding its rows and, as metadata, the cache key's canonical parts and the part's findings."""

    def __init__(self, root: Path, parts: dict[str, Any]):
        key, self.canonical = entry_key(parts)
        self.folder = root / "chunks" / key[:2] / key

    def files(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{_SUFFIX}")) if self.folder.is_dir() else []

    def put(self, part: Part) -> bool:
        """Persist one chunk; a failure to write costs only the chunk (a warning), never the run."""
        rows = {} if part.rows is None else {"rows": part.rows.detach().to("cpu", torch.float32).contiguous()}
        meta = {"key": self.canonical, "part": json.dumps(part.to_json(), ensure_ascii=False)}
        path = self.folder / f"{min(part.covered):012d}-{uuid.uuid4().hex[:12]}{_SUFFIX}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: save_file(rows, str(tmp), metadata=meta))
            return True
        except OSError as exc:
            log.warning("could not save a chunk of finished work to %s (%s); --resume would redo it", path, exc)
            return False

    def load(self) -> list[Part]:
        """Every readable chunk of this key (an unreadable one is skipped with a warning: it is redone)."""
        parts = []
        for path in self.files():
            try:
                with safe_open(str(path), "pt") as handle:
                    meta = handle.metadata() or {}
                    if meta.get("key") != self.canonical:
                        continue
                    names = set(handle.keys())  # a safetensors handle, not a dict
                    rows = handle.get_tensor("rows") if "rows" in names else None
                parts.append(Part.from_json(json.loads(meta["part"]), rows))
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                log.warning("ignoring unreadable chunk %s (%s); its rows are computed again", path, exc)
        return parts

    def drop(self) -> None:
        """Remove the pass's chunks (it finished: its output-cache entry holds everything)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the two-letter folder above, once empty
            self.folder.parent.rmdir()


class Chunker:
    """Collects a rank's results batch by batch; every `every` rows (at a batch boundary) the batches since the
    last chunk are persisted as one chunk. `flush()` persists the rest (Ctrl-C keeps what is done)."""

    def __init__(self, store: ChunkStore | None, every: int):
        self.store, self.every = store, every
        self.done: list[Part] = []
        self._pending = 0  # batches of `done` not yet persisted, from the end
        self._rows = 0
        self.saved = 0  # chunks persisted

    def add(self, batch: Part) -> None:
        self.done.append(batch)
        self._pending += 1
        self._rows += len(batch.covered)
        if self._rows >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.store is not None and self._pending:
            chunk = _concat(self.done[-self._pending :])
            if chunk.covered and self.store.put(chunk):
                self.saved += 1
        self._pending, self._rows = 0, 0

    def result(self) -> Part:
        return _concat(self.done)


def _concat(parts: list[Part]) -> Part:
    """Parts of consecutive batches as one (no index is in two of them)."""
    out = Part()
    for part in parts:
        out.covered += part.covered
        out.ok += part.ok
        out.bad += part.bad
        out.digests.update(part.digests)
    rows = [p.rows for p in parts if p.rows is not None and len(p.rows)]
    out.rows = torch.cat(rows) if rows else None
    if any(p.items is not None for p in parts):
        out.items = [item for p in parts for item in (p.items or [])]
    return out


def findings_from_meta(meta: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """Part fields from the findings an output-cache entry stores (`Part.meta`). An entry without them (text
    embeddings cached before every pass stored its findings) had every item of the pass's `order` readable."""
    if "ok" not in meta:
        return {"ok": sorted(order)}
    return {"ok": [int(i) for i in meta["ok"]], "bad": [(int(i), str(r)) for i, r in meta["bad"]],
            "digests": {int(i): d for i, d in meta["digests"].items()}}  # fmt: skip


class _ShareProgress:
    """Rank 0's own progress scaled to the whole pass, so its bar ends at the pass's total."""

    def __init__(self, progress: Callable[[int], None], own: int, total: int):
        self.progress, self.own, self.total = progress, max(own, 1), total
        self.done, self.shown = 0, 0

    def __call__(self, n: int) -> None:
        self.done += n
        target = min(self.total, round(self.done * self.total / self.own))
        if target > self.shown:
            self.progress(target - self.shown)
            self.shown = target

    def finish(self) -> None:
        if self.total > self.shown:
            self.progress(self.total - self.shown)
            self.shown = self.total


def run_pass(runtime, parts: dict[str, Any] | None, order: list[int],
             compute: Callable[[list[int], Chunker, Callable[[int], None]], Part],
             progress: Callable[[int], None], cached: Callable[[], Part | None],
             keep: Callable[[Part], None], what: str) -> tuple[Part, bool]:  # fmt: skip
    """Run a pass whose work is `compute(indices, chunker, progress)` over `order`, sharded and resumable.

    `parts` is the pass's cache key (None: nothing is cached or persisted); `cached()` reads its output-cache
    entry and `keep(part)` writes it. Returns (the merged part, whether it came from the output cache). On
    rank 0 the part has every output; in a data-parallel run the other ranks get its findings only."""
    ranks = runtime.dist
    hit = cached() if parts is not None and ranks.is_primary else None
    found = ranks.broadcast(hit.findings() if hit is not None else None)
    if found is not None:
        progress(len(order))
        return (hit if ranks.is_primary else found), True
    store = ChunkStore(runtime.cache.root, parts) if parts is not None and runtime.cache is not None else None
    earlier = _earlier(store, runtime, what) if ranks.is_primary and store is not None else []
    covered = set(ranks.broadcast(sorted({i for part in earlier for i in part.covered})))
    size = runtime.batch_size
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    todo = [batch for batch in batches if not covered.issuperset(batch)]
    mine = [index for unit in ranks.my_units(len(todo)) for index in todo[unit]]
    progress(len(order) - sum(len(batch) for batch in todo))
    share = _ShareProgress(progress, len(mine), sum(len(batch) for batch in todo))
    chunker = Chunker(store, max(runtime.chunk_size, 1))

    def work() -> Part:
        try:
            return compute(mine, chunker, share)
        except BaseException:
            chunker.flush()  # what finished before the failure (or Ctrl-C) is kept for --resume
            if chunker.saved and ranks.is_primary:
                log.info("%s: finished batches were saved for --resume (%s)", what, store.folder if store else "")
            raise

    local = ranks.together_run(work)
    share.finish()
    gathered = _gather(ranks, local)
    if not ranks.is_primary:
        return ranks.broadcast(None), False
    merged = merge([*earlier, *gathered], runtime.device)
    if parts is not None:
        keep(merged)
    if store is not None:
        store.drop()
    ranks.broadcast(merged.findings())
    return merged, False


def _earlier(store: ChunkStore, runtime, what: str) -> list[Part]:
    """The chunks an interrupted run left: read with --resume, otherwise only mentioned."""
    files = store.files()
    if not files:
        return []
    if not runtime.resume:
        log.warning("%s: found %d chunk(s) of finished work from an earlier run that did not finish; starting over "
                    "(run with --resume to reuse them; they are kept until this pass finishes)", what, len(files))
        return []
    parts = store.load()
    log.info("%s: resuming: %d row(s) done in %d chunk(s) of an earlier run are reused", what,
             sum(len(p.covered) for p in parts), len(parts))  # fmt: skip
    return parts


def _gather(ranks, local: Part) -> list[Part]:
    """Every rank's part on rank 0 (rank order); [] elsewhere."""
    if not ranks.parallel:
        return [local]
    rows = ranks.gather_rows(local.rows)
    findings = ranks.gather(replace(local, rows=None))
    if not ranks.is_primary:
        return []
    return [replace(part, rows=r) for part, r in zip(findings, rows)]


def resume_command() -> str:
    """This run's own command line with --resume added (under torchrun, with its process count)."""
    args = [arg for arg in sys.argv[1:] if arg != "--resume"]
    command = shlex.join(["mmeval", *args, "--resume"])
    world, local = os.environ.get("WORLD_SIZE", "1"), os.environ.get("LOCAL_WORLD_SIZE")
    if world == "1":
        return command
    if local == world:
        return f"torchrun --nproc_per_node {world} -m {command}"
    return f"your torchrun command with -m {command} (on every node)"

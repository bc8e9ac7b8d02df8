"""The response cache: every reply of a served model, kept in SQLite as soon as it arrives.

The key is the sha256 of the canonical JSON of (the endpoint's model id, the full request body: messages with
their images, generation settings). Headers and the API key are not part of the request body and are never
stored. A rerun, a `--resume` after Ctrl-C or a crash, or a re-scoring sends no request for anything already
answered. SQLite (standard library) because it is one file, safe against a crash mid-write (each reply is its own
committed transaction) and needs no server.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def request_key(model_id: str, body: dict[str, Any]) -> str:
    """The cache key of one request: sha256 over the model id and the canonical JSON of the body."""
    canonical = json.dumps({"v": SCHEMA_VERSION, "model": model_id, "body": body}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Replies by request key (`request_key`); counts its hits and misses."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")  # readers and one writer at once (several runs, one cache)
        # WAL + synchronous=NORMAL: a committed reply survives a crash or Ctrl-C of mmeval (not a power cut) without
        # an fsync per reply, which would stall the event loop that receives them
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                         "reply TEXT NOT NULL, created REAL)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored reply of `key`, or None (counted as a hit or a miss)."""
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, model_id: str, reply: dict[str, Any]) -> None:
        """Store one reply and commit at once (a crash later loses nothing already answered)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies (key, model, reply, created) VALUES (?, ?, ?, ?)",
                             (key, model_id, json.dumps(reply, ensure_ascii=False), time.time()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

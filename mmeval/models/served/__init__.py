"""Served models: an OpenAI-compatible chat-completions backend (`model.type: openai`).

`client.py` sends requests (async, bounded concurrency, retries, streaming timings), `cache.py` keeps every
reply in SQLite as it arrives, `adapter.py` is the captioner / answerer the tasks call, `stats.py` turns the
per-request records into the report's serving block.
"""

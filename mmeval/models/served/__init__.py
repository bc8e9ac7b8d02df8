"""Served models: an OpenAI-compatible chat-completions backend (`model.type: openai`).

`client.py` sends requests (async, bounded concurrency, retries, streaming timings), `cache.py` keeps every
reply in SQLite as it arrives, `content.py` builds the message parts (images as data URLs or URLs, video frames,
`input_audio` WAV), `adapter.py` is the model the tasks call (images, video, audio, spoken questions), `stats.py` turns the
per-request records into the report's serving block.
"""

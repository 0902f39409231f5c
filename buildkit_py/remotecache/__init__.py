"""Caches that travel between machines: `--cache-to` and `--cache-from` (local folders, registries, inline)."""

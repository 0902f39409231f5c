"""buildkit_py: a Dockerfile-compatible image build engine."""

from __future__ import annotations

__version__ = "0.1.0"

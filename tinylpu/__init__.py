"""TinyLPU: a miniature, deterministic LPU-style inference tile."""

from tinylpu.config import Config, ConfigError

__all__ = ["Config", "ConfigError"]

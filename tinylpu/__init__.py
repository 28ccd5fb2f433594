"""TinyLPU: a miniature, deterministic LPU-style inference tile."""

from .config import Config, ConfigError

__all__ = ["Config", "ConfigError"]

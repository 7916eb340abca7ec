"""The compiler's version: stamped into every file and every cache key."""

__version__ = "0.1.0"

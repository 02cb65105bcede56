"""fastload: a load generator with a native hot path."""

__version__ = "0.1.0"

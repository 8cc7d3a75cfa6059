"""memory-server: long-term memory for AI agents over HTTP."""

__version__ = "0.1.0"

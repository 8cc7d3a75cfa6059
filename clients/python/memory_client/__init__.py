"""Python SDK for memory-server."""

__version__ = "0.1.0"
__all__ = ["__version__"]

"""The Model Context Protocol front end: the memory tools, served at `/mcp` by the server itself
(`http.py`, through the services) and over stdio by `memory-server mcp` (`stdio.py`, through the
Python SDK against a running server). `tools.py` defines the tools once for both.

Modules import the `mcp` library absolutely (`from mcp.server import ...`): this package's name
does not shadow it.
"""

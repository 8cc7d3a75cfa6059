"""Thin FastAPI routers, one per resource; the services do the work."""

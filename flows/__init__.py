"""Prefect flows. Each flow is a short list of steps; the logic is in ``warehouse_sync``."""

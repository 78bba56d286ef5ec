"""Warehouse sync: replicates production data into the warehouse and keeps Metabase current.

The Prefect flows in ``flows/`` are thin; the logic lives in this package so
tests and the command line call it directly.
"""

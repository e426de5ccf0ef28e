"""Ingest: discover input files, detect their format, parse them in parallel, write events."""

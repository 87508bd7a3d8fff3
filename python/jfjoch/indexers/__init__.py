"""Indexing algorithms, one module each."""

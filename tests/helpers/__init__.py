"""Test helpers importable from the test modules (``from helpers.data import write_split``)."""

"""The package version, in one place (recorded in every file condense writes)."""
__version__ = "0.1.0"

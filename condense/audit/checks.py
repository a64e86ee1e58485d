"""Imports every check module so that each registers itself (the timm pattern)."""

"""The toy model family package (see family.py)."""

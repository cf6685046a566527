"""Sweeps (``python -m compiler -m key=a,b``): expand the overrides into runs, preflight every
one before the first is written, then compile (and run) each, recording them as one ledger sweep.
"""

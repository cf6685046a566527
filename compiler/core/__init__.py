"""The compiler proper: config in, emitted modules out. No TensorFlow, no I/O beyond the output dir.

compose (Hydra → DictConfig) → validate (→ ``ResolvedConfig``) → plan (→ ``Plan``) → build
(fragments → libcst modules) → static passes (``compiler.passes``) → emit (files + manifest).
``pipeline`` strings the stages together; ``schema`` is the typed config they read.
"""

"""A plugin with a bug at import time: recforge must warn, skip it and go on."""

raise RuntimeError("recforge_raises is broken on purpose")

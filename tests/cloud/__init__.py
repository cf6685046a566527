"""Offline Google Cloud test support: GCS emulator + TLS proxy, fake Vertex AI, fixtures."""

"""Provider adapters: the protocol (``base``), the one HTTP seam (``http``), secret
redaction, the registry of providers, and one package per provider."""

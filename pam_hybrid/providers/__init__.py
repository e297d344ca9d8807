"""Model providers: one module per provider, each an async generator of ProviderEvents, found via the registry."""

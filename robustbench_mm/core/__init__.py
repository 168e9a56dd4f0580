"""What every layer shares: errors, the registry, untrusted values, randomness, progress, processes,
the results schema and the metric registry."""

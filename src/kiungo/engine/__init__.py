"""The hot path: the engine's routes, the nine steps of an exchange, and the outbound pool."""

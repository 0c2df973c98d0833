"""The HTTP API gateway: one address in front of the four services (`gardien service api`)."""

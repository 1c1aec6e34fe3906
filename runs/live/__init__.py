"""Live updates: publishing (publish), websocket consumers, what they watch, routing."""

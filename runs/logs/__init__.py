"""Log lines: capture and storage (capture), their HTML (render)."""

"""The run pages: run list and detail, history, stats, the log page, the definition diff."""

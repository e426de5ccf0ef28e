"""Following a live CometBFT network over its RPC (docs/live.md)."""

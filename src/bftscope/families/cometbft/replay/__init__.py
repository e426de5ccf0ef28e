"""A recorded node served as a CometBFT RPC: `bftscope replay` (docs/live.md)."""

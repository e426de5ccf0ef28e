"""`bftscope top`: the live terminal view (docs/live.md)."""

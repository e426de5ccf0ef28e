"""The Casper family: a Casper node's SSE event stream kept queryable (docs/casper.md)."""

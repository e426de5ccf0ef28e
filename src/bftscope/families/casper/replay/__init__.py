"""A local stand-in for a Casper node's SSE server: what tests, benches and ``bftscope casper replay`` follow."""

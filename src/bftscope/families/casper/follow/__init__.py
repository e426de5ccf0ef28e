"""Following Casper nodes' SSE streams (docs/casper.md "Followers")."""

"""The Casper family's REST routes: the CasperLabs event-store's and the casper-sidecar's, with filters and
keyset cursors (docs/casper.md "REST"). ``mounts.py`` builds the routers; each other module owns one noun:
parameters, cursors, the page envelope, blocks, deploys, raw payloads, response shapes and errors."""

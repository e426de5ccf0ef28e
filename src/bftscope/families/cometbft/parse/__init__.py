"""CometBFT parsing: log lines (JSON and text), WAL frames (protobuf and amino), node homes and identities
become normalized events. Nothing here queries the store."""

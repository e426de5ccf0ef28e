"""CometBFT / Tendermint: log and WAL parsers, the network simulator, analytics."""

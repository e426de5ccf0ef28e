"""Synthetic CometBFT networks: a discrete-event generator that writes real-format logs and the ground
truth it injected (entry point :mod:`.network`). Not to be confused with an uploaded capture, which the
control plane calls a simulation."""

"""Chain-neutral parts of following live networks: networks as resources, alerts, retention (docs/live.md)."""

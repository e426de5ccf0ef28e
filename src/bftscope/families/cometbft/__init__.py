"""The CometBFT (and Tendermint) family: what it registers is declared in :mod:`.family`.

Its parsers, analytics and simulator are still in :mod:`bftscope.cometbft` (they move here later);
this package holds what plugs them into the chain-neutral layers: the family declaration, its API
routers, its CLI commands and how ``/events`` renders its events.
"""

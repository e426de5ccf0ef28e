"""The CometBFT (and Tendermint) family: what it registers is declared in :mod:`.family`.

Subpackages by layer: :mod:`.parse` (JSON and text logs, WALs, node homes → events), :mod:`.analytics`
(derived tables, rollups, every answer and the report), :mod:`.synthetic` (the generator of synthetic
networks with known answers). Beside them, what plugs the family into the chain-neutral layers: its event
kinds (:mod:`.kinds`), API routers (:mod:`.api`), CLI commands (:mod:`.cli`) and how ``/events`` renders
its events (:mod:`.eventpage`).
"""

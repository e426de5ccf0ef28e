"""Chain families: each BFT chain bftscope understands is one family, registered in :mod:`.registry`.

The layers (ingest, store, analytics, api, cli, control) are chain-neutral and reach a family only
through the :class:`~bftscope.families.base.ChainFamily` it registers.
"""

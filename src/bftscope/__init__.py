"""bftscope: consensus observability for BFT blockchains.

Sources (files, live streams) are parsed into one normalized event model (:mod:`bftscope.model`),
stored by a :class:`bftscope.store.Store`, and analysed per chain family (``bftscope.families.cometbft`` …).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"

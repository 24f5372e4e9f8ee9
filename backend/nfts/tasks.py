"""The shop's indexer handlers register in web and worker processes through this module."""

from backend.nfts import handlers  # noqa: F401

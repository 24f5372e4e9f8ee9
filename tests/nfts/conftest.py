from tests.nfts.shop_helpers import shop_app  # noqa: F401

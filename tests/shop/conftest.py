from tests.shop.shop_helpers import shop_app  # noqa: F401

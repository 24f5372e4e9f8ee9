from tests.shop.shop_helpers import any_db_shop, shop_app  # noqa: F401

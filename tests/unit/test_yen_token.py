"""The yen stablecoin as a per-chain setting (backend/chain/yen.py): YEN_TOKEN_ADDRESS, _SYMBOL and
_DECIMALS set together and checked; the local test token by default on a local chain; none
elsewhere, with a clear message from the shop and the DAO instead of a crash; amounts in whole
yen, 10**decimals units each on chain. (The deployed token and a configured address on anvil are
in tests/shop/test_yen_token_chain.py.)"""

from __future__ import annotations

import pytest

from backend.chain.registry import DeployedContract, Deployments
from backend.chain.yen import (
    TEST_YEN_KEY,
    YenSetting,
    YenTokenUnavailable,
    resolve_yen_token,
)
from backend.config import Settings, SettingsError
from backend.core.errors import InvalidInput, ServiceUnavailable
from backend.dao.proposals import token_contract
from backend.regions.models import Town
from backend.shop.catalog import token_key, token_scale, yen_token

JPYC = "0x431D5dfF03120AFA4bDf332c61A6e1766eF37BDB"
TEST_YEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _deployments(chain_id: int) -> Deployments:
    c = DeployedContract(TEST_YEN_KEY, "TestYenStablecoin", TEST_YEN, 1, "0x" + "00" * 32, "h")
    return Deployments(chain_id, {TEST_YEN_KEY: c})


def _env(monkeypatch, tmp_path, **values: str) -> None:
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    for name in ("YEN_TOKEN_ADDRESS", "YEN_TOKEN_SYMBOL", "YEN_TOKEN_DECIMALS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_the_setting_is_read_from_the_environment(monkeypatch, tmp_path):
    _env(monkeypatch, tmp_path)
    s = Settings.from_env()
    assert (s.yen_token_address, s.yen_token_symbol, s.yen_token_decimals) == ("", "", None)
    _env(
        monkeypatch,
        tmp_path,
        YEN_TOKEN_ADDRESS=JPYC,
        YEN_TOKEN_SYMBOL="JPYC",
        YEN_TOKEN_DECIMALS="18",
    )
    s = Settings.from_env()
    assert (s.yen_token_address, s.yen_token_symbol, s.yen_token_decimals) == (JPYC, "JPYC", 18)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"YEN_TOKEN_ADDRESS": "0x1234", "YEN_TOKEN_SYMBOL": "JPYC"}, "YEN_TOKEN_ADDRESS"),
        ({"YEN_TOKEN_ADDRESS": "jpyc.eth"}, "YEN_TOKEN_ADDRESS"),
        ({"YEN_TOKEN_ADDRESS": "0x" + "0" * 40}, "YEN_TOKEN_ADDRESS"),
        ({"YEN_TOKEN_ADDRESS": "0x" + "g" * 40}, "YEN_TOKEN_ADDRESS"),
        ({"YEN_TOKEN_SYMBOL": "JPYC", "YEN_TOKEN_DECIMALS": "18"}, "need YEN_TOKEN_ADDRESS"),
        ({"YEN_TOKEN_ADDRESS": JPYC, "YEN_TOKEN_DECIMALS": "18"}, "YEN_TOKEN_SYMBOL"),
        ({"YEN_TOKEN_ADDRESS": JPYC, "YEN_TOKEN_SYMBOL": "J P Y"}, "YEN_TOKEN_SYMBOL"),
        ({"YEN_TOKEN_ADDRESS": JPYC, "YEN_TOKEN_SYMBOL": "JPYC"}, "YEN_TOKEN_DECIMALS"),
        (
            {"YEN_TOKEN_ADDRESS": JPYC, "YEN_TOKEN_SYMBOL": "J", "YEN_TOKEN_DECIMALS": "37"},
            "0 to 36",
        ),
        (
            {"YEN_TOKEN_ADDRESS": JPYC, "YEN_TOKEN_SYMBOL": "J", "YEN_TOKEN_DECIMALS": "-1"},
            "0 to 36",
        ),
        (
            {"YEN_TOKEN_ADDRESS": JPYC, "YEN_TOKEN_SYMBOL": "J", "YEN_TOKEN_DECIMALS": "6.5"},
            "integer",
        ),
    ],
)
def test_nonsense_is_refused_with_the_setting_named(monkeypatch, tmp_path, values, named):
    _env(monkeypatch, tmp_path, **values)
    with pytest.raises(SettingsError, match=named):
        Settings.from_env()


def test_a_local_chain_defaults_to_the_deployed_test_yen():
    yen = resolve_yen_token(YenSetting(), 31337, _deployments(31337))
    assert (yen.contract, yen.address, yen.symbol, yen.decimals, yen.test) == (
        TEST_YEN_KEY,
        TEST_YEN,
        "tJPY",
        0,
        True,
    )
    assert yen.units(5000) == 5000 and yen.yen(5000) == 5000


def test_a_configured_token_wins_everywhere_and_its_decimals_count():
    setting = YenSetting(JPYC.lower(), "JPYC", 18)
    for chain_id, deployments in ((31337, _deployments(31337)), (1, None), (137, None)):
        yen = resolve_yen_token(setting, chain_id, deployments)
        assert (yen.contract, yen.address, yen.symbol, yen.test) == (JPYC, JPYC, "JPYC", False)
    assert yen.units(5000) == 5000 * 10**18
    assert yen.yen(5000 * 10**18 + 10**18 - 1) == 5000  # a part of a yen is not a yen
    assert isinstance(yen.units(1), int)


def test_off_a_local_chain_without_a_setting_there_is_no_yen_token():
    with pytest.raises(YenTokenUnavailable, match="YEN_TOKEN_ADDRESS"):
        resolve_yen_token(YenSetting(), 1, _deployments(1))
    with pytest.raises(YenTokenUnavailable):  # nor on a local chain that deployed none
        resolve_yen_token(YenSetting(), 31337, None)


class _Chain:
    """A gateway that knows only its yen token (or that it has none)."""

    def __init__(self, setting: YenSetting, chain_id: int = 1) -> None:
        self.setting, self.chain_id = setting, chain_id

    def yen_token(self):
        return resolve_yen_token(self.setting, self.chain_id, None)


def test_the_shop_and_the_dao_say_clearly_that_yen_is_off():
    town = Town(slug="toyako", name_ja="洞爺湖町", name_en="Lake Toya", chain_id=1)
    off = _Chain(YenSetting())
    with pytest.raises(ServiceUnavailable) as shop_err:
        yen_token(off)
    assert shop_err.value.code == "yen_token_off" and "not available" in shop_err.value.message
    with pytest.raises(ServiceUnavailable):
        token_key(town, "stablecoin", off)
    assert token_key(town, "points", off) == "towns.toyako.RegionPoints"  # points still work
    with pytest.raises(InvalidInput) as dao_err:
        token_contract(town, "yen", off)
    assert dao_err.value.code == "yen_token_off" and dao_err.value.details["field"] == "token"
    assert token_contract(town, "points", off) == ("towns.toyako.RegionPoints", "RegionPoints", 1)

    on = _Chain(YenSetting(JPYC, "JPYC", 2))
    assert token_key(town, "stablecoin", on) == JPYC
    assert token_scale("stablecoin", on) == 100 and token_scale("points", on) == 1
    assert token_contract(town, "yen", on) == (JPYC, "TestYenStablecoin", 100)

"""The chain's yen stablecoin: what stablecoin listings are paid in, what card listings are
recorded against and what DAO yen payouts send.

It is a per-chain setting (YEN_TOKEN_ADDRESS, YEN_TOKEN_SYMBOL, YEN_TOKEN_DECIMALS in
backend/config.py): an ERC-20 with EIP-2612 permit (JPYC, for instance). Unset on a local test
chain, it is the deployed TestYenStablecoin (tJPY, 0 decimals, minted by the test faucet); unset
on any other chain, there is none and the stablecoin features answer YenTokenUnavailable (a
clear 503 message, not a crash).

Amounts: prices, payouts and the faucet are whole yen; on chain a yen is 10**decimals units
(`units`); a balance read in units is shown in whole yen, rounded down (`yen`).
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from backend.chain.dao_settings import LOCAL_CHAIN_IDS
from backend.chain.errors import ChainError
from backend.chain.registry import Deployments, RegistryError

TEST_YEN_KEY = "TestYenStablecoin"  # the deployments key (and artifact) of the local test token
YEN_ARTIFACT = "TestYenStablecoin"  # its ABI (ERC-20 + EIP-2612 permit) calls any yen token
TEST_YEN_SYMBOL = "tJPY"


class YenTokenUnavailable(ChainError):
    """No yen stablecoin on this chain: stablecoin payments and yen payouts are off."""

    def __init__(self, chain_id: int) -> None:
        super().__init__(
            f"no yen stablecoin on chain {chain_id}: set YEN_TOKEN_ADDRESS, YEN_TOKEN_SYMBOL "
            "and YEN_TOKEN_DECIMALS to turn stablecoin payments and yen payouts on"
        )
        self.chain_id = chain_id


@dataclass(frozen=True)
class YenSetting:
    """The configured token (Settings.yen_token_*); empty address: none configured."""

    address: str = ""
    symbol: str = ""
    decimals: int = 0


@dataclass(frozen=True)
class YenToken:
    """The chain's yen token. `contract` names it to ContractCall and the gateway's reads (the
    deployments key of the test token, else its address: the gateway knows its ABI)."""

    contract: str
    address: str
    symbol: str
    decimals: int
    test: bool  # the local TestYenStablecoin: the test faucet may mint it
    artifact_name: str = YEN_ARTIFACT

    def units(self, yen: int) -> int:
        """Whole yen -> the token's smallest units on chain."""
        return int(yen) * 10**self.decimals

    def yen(self, units: int) -> int:
        """The token's units -> whole yen, rounded down."""
        return int(units) // 10**self.decimals


def resolve_yen_token(
    setting: YenSetting, chain_id: int, deployments: Deployments | None
) -> YenToken:
    """The yen token of `chain_id`: the configured one, else the deployed test token on a local
    chain; YenTokenUnavailable otherwise."""
    if setting.address:
        configured = str(Web3.to_checksum_address(setting.address))
        return YenToken(configured, configured, setting.symbol, setting.decimals, test=False)
    if chain_id in LOCAL_CHAIN_IDS and deployments is not None:
        try:
            address = deployments.address(TEST_YEN_KEY)
        except RegistryError:
            pass
        else:
            return YenToken(TEST_YEN_KEY, address, TEST_YEN_SYMBOL, 0, test=True)
    raise YenTokenUnavailable(chain_id)

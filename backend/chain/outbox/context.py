"""What every part of the outbox shares: settings, the JSON-RPC client, the keys, and the chain
facts read once per process (chain id, contract addresses)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from web3 import Web3

from backend.chain.keyring import KeyRing
from backend.chain.outbox.rpc import RpcClient
from backend.chain.outbox.states import RELAYER
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import (
    Deployments,
    RegistryError,
    address_of,
    artifact,
    load_deployments,
)
from backend.config import Settings
from backend.core.db import utcnow
from backend.core.errors import AppError

GWEI = 10**9
ESTIMATE_MARGIN = 1.25  # estimates run against "pending"; the margin covers state drift


def to_hex(n: int) -> str:
    return hex(int(n))


def today() -> dt.date:
    return utcnow().date()


CREATE_PREFIX = "create:"  # OutboxTx.contract of a contract creation (enqueue.ContractCreation)


def creation_data(artifact_name: str, args: list[Any]) -> str:
    """The data of a contract-creation transaction: the artifact's bytecode and its ABI-encoded
    constructor arguments."""
    art = artifact(artifact_name)
    built = Web3().eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args)
    data = built.data_in_transaction
    return data if data.startswith("0x") else "0x" + data


class OutboxContext:
    """Settings, RPC client and keys of one OutboxService, and the chain facts it caches."""

    def __init__(self, settings: Settings, rpc: RpcClient | None = None) -> None:
        self.settings = settings
        self.rpc = rpc or RpcClient(settings.rpc_url, timeout=settings.rpc_timeout)
        self.keys = KeyRing.from_settings(settings)
        self._chain_id: int | None = None
        self._addresses: dict[str, str] = {}

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return self._chain_id

    def address_of(self, contract: str) -> str:
        """A deployments key ("towns.x.RegionPoints") or an address, as a checksummed address."""
        if contract.startswith("0x"):
            return address_of(contract, self._deployments)
        cached = self._addresses.get(contract)
        if cached is not None:
            return cached
        try:
            address = address_of(contract, self._deployments)
        except RegistryError as exc:
            raise AppError(str(exc), code="not_deployed") from None
        self._addresses[contract] = address
        return address

    def _deployments(self) -> Deployments:
        return load_deployments(self.settings.deployments_dir, self.chain_id)

    @property
    def forwarder_address(self) -> str:
        return self.address_of("FurusatoForwarder")

    def to_address(self, t: OutboxTx) -> str:
        """Where a row's transaction goes: the forwarder (relayed request), else its contract;
        "" (no `to`) for a contract creation."""
        if t.sender_kind == RELAYER:
            return self.forwarder_address
        if t.contract.startswith(CREATE_PREFIX):
            return ""
        return self.address_of(t.contract)

    def call_params(self, t: OutboxTx) -> dict[str, Any]:
        """The eth_call / eth_estimateGas object of a role-key row (no `to` for a creation)."""
        call: dict[str, Any] = {"from": t.sender_address, "data": t.call_data}
        to = self.to_address(t)
        if to:
            call["to"] = to
        if int(t.value):
            call["value"] = to_hex(int(t.value))
        return call

"""What every part of the outbox shares: settings, the JSON-RPC client, the keys, and the chain
facts read once per process (chain id, contract addresses)."""

from __future__ import annotations

import datetime as dt

from backend.chain.keyring import KeyRing
from backend.chain.outbox.rpc import RpcClient
from backend.chain.outbox.states import RELAYER
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments, RegistryError, address_of, load_deployments
from backend.config import Settings
from backend.core.db import utcnow
from backend.core.errors import AppError

GWEI = 10**9
ESTIMATE_MARGIN = 1.25  # estimates run against "pending"; the margin covers state drift


def to_hex(n: int) -> str:
    return hex(int(n))


def today() -> dt.date:
    return utcnow().date()


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
        """Where a row's transaction goes: the forwarder (relayed request), else its contract."""
        if t.sender_kind == RELAYER:
            return self.forwarder_address
        return self.address_of(t.contract)

"""What the rest of the backend may ask of the chain: a Protocol and plain dataclasses.

Domains never see a Web3 object; `Web3Gateway` is the one implementation that talks to the
node: plain JSON-RPC (chain id, head, block times) through backend.chain.rpc.RpcClient, contract
reads through web3 (it encodes and decodes the ABI).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from web3 import Web3

from backend.chain.errors import ChainUnavailable, RpcError
from backend.chain.registry import (
    Deployments,
    RegistryError,
    address_of,
    artifact,
    load_deployments,
)
from backend.chain.rpc import RpcClient, web3_provider
from backend.chain.yen import YenSetting, YenToken, resolve_yen_token

__all__ = ["ChainGateway", "ChainStatus", "ChainUnavailable", "Eip712Domain", "Web3Gateway"]


@dataclass(frozen=True)
class ChainStatus:
    chain_id: int
    head_block: int
    contracts_deployed: bool


@dataclass(frozen=True)
class Eip712Domain:
    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


class ChainGateway(Protocol):
    def status(self) -> ChainStatus:
        """The chain id and head block; raises ChainUnavailable when the node does not answer."""
        ...

    def read(
        self, contract: str, function: str, *args: Any, artifact_name: str | None = None
    ) -> Any:
        """Call a view function; ints come back as Python ints, addresses checksummed."""
        ...


class Web3Gateway:
    def __init__(
        self,
        rpc_url: str,
        deployments_dir: Path,
        timeout: float = 5.0,
        yen: YenSetting | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self.deployments_dir = deployments_dir
        self.yen = yen or YenSetting()
        self.w3 = Web3(web3_provider(rpc_url, timeout=timeout))
        self.rpc = RpcClient(rpc_url, timeout=timeout)  # a JsonRpc per thread
        self._chain_id: int | None = None
        self._contracts: dict[tuple[str, str], Any] = {}
        self._block_times: OrderedDict[str, int] = OrderedDict()  # block hash -> timestamp
        self._block_times_lock = threading.Lock()
        # The last chain_now() this process asked the node for: (chain seconds, wall seconds).
        self._seen_now: tuple[int, float] | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            try:
                self._chain_id = self.rpc.chain_id()
            except Exception as exc:
                raise ChainUnavailable(
                    f"{type(exc).__name__} from {_redact(self.rpc_url)}"
                ) from exc
        return self._chain_id

    def deployments(self) -> Deployments:
        """This chain's deployments file (raises RegistryError when there is none)."""
        return load_deployments(self.deployments_dir, self.chain_id)

    def address_of(self, contract: str) -> str:
        """A deployments key ("towns.sarabetsu.RegionPoints") or an address, checksummed."""
        return address_of(contract, self.deployments)

    def yen_token(self) -> YenToken:
        """This chain's yen stablecoin (backend/chain/yen.py); YenTokenUnavailable when none."""
        try:
            deployments: Deployments | None = self.deployments()
        except RegistryError:
            deployments = None
        return resolve_yen_token(self.yen, self.chain_id, deployments)

    def _artifact_name(self, contract: str, artifact_name: str | None) -> str:
        if artifact_name:
            return artifact_name
        if self.yen.address and contract.lower() == self.yen.address.lower():
            return self.yen_token().artifact_name
        if contract.startswith("0x"):
            for c in self.deployments().contracts.values():
                if c.address.lower() == contract.lower():
                    return c.contract
            raise RegistryError(f"{contract} is not in the deployments file; name its artifact")
        return self.deployments().contracts[contract].contract

    def read(
        self, contract: str, function: str, *args: Any, artifact_name: str | None = None
    ) -> Any:
        """Call a view function of a deployed contract (by deployments key or address)."""
        name = self._artifact_name(contract, artifact_name)
        address = self.address_of(contract)
        c = self._contracts.get((address, name))
        if c is None:  # building a contract object parses its ABI: once per process
            c = self._contracts[(address, name)] = self.w3.eth.contract(
                address=Web3.to_checksum_address(address),
                abi=artifact(name).abi,
            )
        try:
            return getattr(c.functions, function)(*args).call()
        except (ConnectionError, OSError) as exc:
            raise ChainUnavailable(f"{type(exc).__name__} from {_redact(self.rpc_url)}") from exc

    def block_timestamp(self, number: int | str, block_hash: str | None = None) -> int:
        """The block's timestamp (Unix seconds). With `block_hash` (as the indexer stores it) the
        block is fetched by hash and the answer is kept in a per-process LRU cache: a hash names
        one block forever, whereas a number may name another block after a reorg."""
        key = block_hash.lower() if block_hash else None
        if key is not None:
            with self._block_times_lock:
                if key in self._block_times:
                    self._block_times.move_to_end(key)
                    return self._block_times[key]
        if block_hash:
            call = ("eth_getBlockByHash", [block_hash, False])
        else:  # a number, or a tag such as "latest"
            call = (
                "eth_getBlockByNumber",
                [hex(number) if isinstance(number, int) else number, False],
            )
        block = self.rpc.call(*call)  # RpcUnavailable (a ChainUnavailable) when unanswered
        if block is None:
            raise RpcError(0, f"no block {block_hash or number}", method=call[0])
        timestamp = int(block["timestamp"], 16)
        if key is not None:
            with self._block_times_lock:
                self._block_times[key] = timestamp
                if len(self._block_times) > _BLOCK_TIMES_CACHED:
                    self._block_times.popitem(last=False)
        return timestamp

    def chain_now(self) -> int:
        """The chain's clock (Unix seconds; RpcClient.chain_now): where a deadline the chain
        checks starts. Raises ChainUnavailable when the node does not answer."""
        now = self.rpc.chain_now()
        self._seen_now = (now, time.time())
        return now

    def seen_chain_now(self) -> int | None:
        """The chain's clock as this process last read it (chain_now), moved on by the wall
        time since; None before any read. Asks the node nothing: pages use it (with what the
        indexer saw, `read_models.chain_clock`) to know a chain whose clock runs ahead."""
        seen = self._seen_now
        if seen is None:
            return None
        return seen[0] + max(0, int(time.time() - seen[1]))

    def eip712_domain(self, contract: str, artifact_name: str | None = None) -> Eip712Domain:
        """The contract's EIP-712 domain as it reports it (ERC-5267), for typed-data signing."""
        _fields, name, version, chain_id, verifying, _salt, _ext = self.read(
            contract, "eip712Domain", artifact_name=artifact_name
        )
        return Eip712Domain(name, version, int(chain_id), str(verifying))

    def status(self) -> ChainStatus:
        try:
            answers = self.rpc.batch([("eth_chainId", []), ("eth_blockNumber", [])])
            errors = [a for a in answers if isinstance(a, RpcError)]
            if errors:
                raise errors[0]
            chain_hex, head_hex = answers
            chain_id, head = int(chain_hex, 16), int(head_hex, 16)
        except Exception as exc:  # requests/urllib3/JSON-RPC errors all mean "not answering"
            raise ChainUnavailable(f"{type(exc).__name__} from {_redact(self.rpc_url)}") from exc
        try:
            load_deployments(self.deployments_dir, chain_id)
            deployed = True
        except RegistryError:
            deployed = False
        return ChainStatus(chain_id=chain_id, head_block=head, contracts_deployed=deployed)


_BLOCK_TIMES_CACHED = 4096


def _redact(url: str) -> str:
    """Scheme and host only: hosted RPC URLs carry API keys in their path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

"""What the rest of the backend may ask of the chain: a Protocol and plain dataclasses.

Domains never see a Web3 object; `Web3Gateway` is the one implementation that talks JSON-RPC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from web3 import Web3

from backend.chain.registry import RegistryError, load_deployments


class ChainUnavailable(RuntimeError):
    """The RPC endpoint did not answer."""


@dataclass(frozen=True)
class ChainStatus:
    chain_id: int
    head_block: int
    contracts_deployed: bool


class ChainGateway(Protocol):
    def status(self) -> ChainStatus:
        """The chain id and head block; raises ChainUnavailable when the node does not answer."""
        ...


class Web3Gateway:
    def __init__(self, rpc_url: str, deployments_dir: Path, timeout: float = 5.0) -> None:
        self.rpc_url = rpc_url
        self.deployments_dir = deployments_dir
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))

    def status(self) -> ChainStatus:
        try:
            chain_id = self.w3.eth.chain_id
            head = self.w3.eth.block_number
        except Exception as exc:  # requests/urllib3/JSON-RPC errors all mean "not answering"
            raise ChainUnavailable(f"{type(exc).__name__} from {_redact(self.rpc_url)}") from exc
        try:
            load_deployments(self.deployments_dir, chain_id)
            deployed = True
        except RegistryError:
            deployed = False
        return ChainStatus(chain_id=chain_id, head_block=head, contracts_deployed=deployed)


def _redact(url: str) -> str:
    """Scheme and host only: hosted RPC URLs carry API keys in their path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

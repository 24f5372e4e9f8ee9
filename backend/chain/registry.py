"""ABIs (generated into abi/) and addresses (deployments/<chain_id>.json, the only source)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from backend.chain.errors import ChainError

ABI_DIR = Path(__file__).resolve().parent / "abi"
# Safe's own published artifacts (scripts/vendor_safe.py), looked up after ours.
SAFE_ABI_DIR = Path(__file__).resolve().parent / "safe_abi"
# Further folders looked up last: tests and benchmarks add tests/abi/, the artifacts of the
# contracts only they deploy (contracts/test/: mocks, plain OpenZeppelin tokens).
_EXTRA_DIRS: list[Path] = []


def add_artifact_dir(path: Path) -> None:
    """Also look artifacts up in `path` (after ABI_DIR and SAFE_ABI_DIR)."""
    path = Path(path).resolve()
    if path not in _EXTRA_DIRS:
        _EXTRA_DIRS.append(path)
        artifact.cache_clear()


class RegistryError(ChainError, LookupError):
    """An artifact or a deployment is missing."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str

    @property
    def code_hash(self) -> str:
        return hashlib.sha256(self.bytecode.encode()).hexdigest()


@cache
def artifact(name: str) -> Artifact:
    path = next(
        (
            p
            for p in (d / f"{name}.json" for d in (ABI_DIR, SAFE_ABI_DIR, *_EXTRA_DIRS))
            if p.exists()
        ),
        None,
    )
    if path is None:
        raise RegistryError(f"no compiled artifact {name}; run `make contracts`")
    data = json.loads(path.read_text())
    return Artifact(name=name, abi=data["abi"], bytecode=data["bytecode"])


@dataclass(frozen=True)
class DeployedContract:
    key: str  # e.g. "FurusatoForwarder" or "towns.sarabetsu.RegionPoints"
    contract: str  # artifact name
    address: str
    block_number: int
    tx_hash: str
    code_hash: str = ""  # sha256 of the creation bytecode it was deployed from


@dataclass(frozen=True)
class Deployments:
    chain_id: int
    contracts: dict[str, DeployedContract]

    def address(self, key: str) -> str:
        try:
            return self.contracts[key].address
        except KeyError:
            raise RegistryError(f"{key} is not deployed on chain {self.chain_id}") from None

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "chain_id": self.chain_id,
                    "contracts": {
                        k: {
                            "contract": c.contract,
                            "address": c.address,
                            "block_number": c.block_number,
                            "tx_hash": c.tx_hash,
                            "code_hash": c.code_hash,
                        }
                        for k, c in sorted(self.contracts.items())
                    },
                },
                indent=2,
            )
            + "\n"
        )


def deployments_path(directory: Path, chain_id: int) -> Path:
    return Path(directory) / f"{chain_id}.json"


def load_deployments(directory: Path, chain_id: int) -> Deployments:
    """Read deployments/<chain_id>.json. Raises RegistryError when there is none."""
    path = deployments_path(directory, chain_id)
    if not path.exists():
        raise RegistryError(f"no deployments file {path}; run the deploy script for this chain")
    data = json.loads(path.read_text())
    if int(data["chain_id"]) != chain_id:
        raise RegistryError(f"{path} is for chain {data['chain_id']}, not {chain_id}")
    return Deployments(
        chain_id=chain_id,
        contracts={k: DeployedContract(key=k, **v) for k, v in data["contracts"].items()},
    )


def address_of(contract: str, deployments: Callable[[], Deployments]) -> str:
    """A deployments key ("towns.sarabetsu.RegionPoints") or an address, as a checksummed
    address; `deployments` (this chain's file) is only read for a key. Raises RegistryError when
    the key is not deployed."""
    if contract.startswith("0x"):
        return str(to_checksum_address(contract))
    return str(to_checksum_address(deployments().address(contract)))


def save_deployments(directory: Path, deployments: Deployments) -> Path:
    path = deployments_path(directory, deployments.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(deployments.to_json())
    tmp.replace(path)
    return path

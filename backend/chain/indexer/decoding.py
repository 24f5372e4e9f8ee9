"""Decoding raw logs: a topic0 map per artifact, single-word types sliced directly and
compiled into one expression per event, others through eth_abi."""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from backend.chain.indexer.events import ChainEvent
from backend.chain.registry import artifact

_JSON = json.JSONEncoder(separators=(",", ":"))  # one C encoder, not one per call


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format (backslash, tab, newline, carriage return)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


@lru_cache(maxsize=131072)
def _checksum(addr: str) -> str:
    return str(to_checksum_address(addr))


def _canonical(inp: dict[str, Any]) -> str:
    t = str(inp["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in inp["components"]) + ")" + t[5:]
    return t


_BYTES_N = re.compile(r"^bytes([0-9]+)$")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one chunk. A chunk allocates a few container
    objects per log (the parsed JSON, ChainEvents) that all die by reference counting when it
    ends; left on, the collector keeps traversing them mid-chunk, promotes them, and sets off
    full collections of the whole heap (~80 ms each in a worker that imported web3 and
    SQLAlchemy) that find nothing. Cyclic garbage made meanwhile is collected afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_ADDRESS_WORDS: dict[str, str] = {}  # topic or data word -> checksummed address


def _address_word(w: str) -> str:
    # Keyed by the topic string itself: no slicing on the hot path, and a chain's logs name
    # the same few thousand holders over and over (bounded like an LRU, cleared when full).
    a = _ADDRESS_WORDS.get(w)
    if a is None:
        if len(_ADDRESS_WORDS) >= 131072:
            _ADDRESS_WORDS.clear()
        a = _ADDRESS_WORDS[w] = _checksum("0x" + w[-40:])
    return a


def _uint_word(w: str) -> int:
    return int(w, 16)  # int() accepts the 0x of a topic


def _signed(w: str) -> int:
    v = int(w, 16)
    return v - (1 << 256) if v >> 255 else v


def _word_decoder(typ: str) -> Callable[[str], Any] | None:
    """A decoder of one 32-byte word for a static single-word type, else None. The word is
    the last 64 hex digits of its argument: a whole 0x topic or a slice of the data."""
    if typ == "address":
        return _address_word
    if typ.startswith("uint"):
        return _uint_word
    if typ.startswith("int"):
        return _signed
    if typ == "bool":
        return lambda w: int(w, 16) != 0
    m = _BYTES_N.match(typ)
    if m:
        n = int(m[1]) * 2
        return lambda w: "0x" + w[-64:][:n]
    return None


def _plain(value: Any) -> Any:
    """eth_abi output as JSON-friendly Python: bytes as 0x-hex, tuples as lists."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        try:
            return _checksum(value)
        except ValueError:
            return value
    return value


def _json_slot(typ: str) -> str | None:
    """How a single-word value of `typ` is written into a JSON template, or None when
    json.dumps must do it (bool: Python's True is JSON's true)."""
    if typ == "address" or _BYTES_N.match(typ):
        return '"%s"'  # 0x-hex: nothing to escape
    if typ.startswith(("uint", "int")):
        return "%d"  # exact for any Python int, as json.dumps writes it
    return None


@dataclass
class EventDecoder:
    name: str
    topic0: str
    indexed: list[tuple[str, Callable[[str], Any]]]
    data_names: list[str]
    data_types: list[str]
    data_words: list[Callable[[str], Any]] | None  # fast path when every data type is one word
    # '{"from":"%s","to":"%s","value":%d}' when every argument is a hex string or an int:
    # %-formatting the args is ~3x cheaper than json.dumps of the dict, per event.
    json_template: str | None = None

    def decode(self, topics: list[str], data: str) -> dict[str, Any] | None:
        if len(topics) != len(self.indexed) + 1:
            return None  # same topic0, other indexing (e.g. ERC-20 vs ERC-721 Transfer)
        args: dict[str, Any] = {}
        for (name, dec), topic in zip(self.indexed, topics[1:], strict=False):  # checked above
            args[name] = dec(topic)
        if self.data_words is not None:
            if len(data) < 2 + 64 * len(self.data_words):
                return None
            for i, (name, dec) in enumerate(zip(self.data_names, self.data_words, strict=False)):
                args[name] = dec(data[2 + 64 * i : 66 + 64 * i])
        elif self.data_types:
            values = abi_decode(self.data_types, bytes.fromhex(data[2:]))
            for name, value in zip(self.data_names, values, strict=True):
                args[name] = _plain(value)
        return args

    @property
    def names(self) -> tuple[str, ...]:
        """The argument names in the order of `decode`'s dict and of `values`' tuple."""
        return tuple(n for n, _ in self.indexed) + tuple(self.data_names)

    @property
    def values(self) -> Callable[[list[str], str], tuple[Any, ...] | None]:
        """`decode` as a tuple of the values (None where decode gives None), compiled once."""
        fn = self.__dict__.get("_values")
        if fn is None:
            fn = self.__dict__["_values"] = _compile_values(self)
        return fn

    def args_json(self, args: dict[str, Any]) -> str:
        """`args` as compact JSON, escaped for COPY's text format."""
        if self.json_template is not None:
            return self.json_template % tuple(args.values())
        return _copy_text(_JSON.encode(args))


def _compile_values(dec: EventDecoder) -> Callable[[list[str], str], tuple[Any, ...] | None]:
    """A function (topics, data) -> tuple of values, or None, equal to `dec.decode` but
    without the dict, the zips and a call per word: for single-word data it is generated as
    one expression, e.g. `(aw(t[1]), aw(t[2]), int(d[2:66], 16))` for an ERC-20 Transfer.
    The generated source holds only indices and names of this module's decoders."""
    if dec.data_words is None:

        def slow(topics: list[str], data: str) -> tuple[Any, ...] | None:
            args = dec.decode(topics, data)
            return None if args is None else tuple(args.values())

        return slow
    env: dict[str, Any] = {"_AW": _ADDRESS_WORDS, "_aw": _address_word}
    parts = []

    def word(i: int, fn: Callable[[str], Any], src: str) -> str:
        if fn is _address_word:
            return f"(_AW.get({src}) or _aw({src}))"
        if fn is _uint_word:
            return f"int({src}, 16)"
        env[f"_d{i}"] = fn
        return f"_d{i}({src})"

    for i, (_, idec) in enumerate(dec.indexed):
        parts.append(word(i, idec, f"t[{i + 1}]"))
    base = len(dec.indexed)
    for j, ddec in enumerate(dec.data_words):
        parts.append(word(base + j, ddec, f"d[{2 + 64 * j}:{66 + 64 * j}]"))
    src = (
        "def _values(t, d):\n"
        f"    if len(t) != {len(dec.indexed) + 1} or len(d) < {2 + 64 * len(dec.data_words)}:\n"
        "        return None\n"
        f"    return ({', '.join(parts)}{',' if len(parts) == 1 else ''})\n"
    )
    exec(compile(src, f"<values of {dec.topic0}>", "exec"), env)  # noqa: S102
    values: Callable[[list[str], str], tuple[Any, ...] | None] = env["_values"]
    return values


@cache
def decoders_for(artifact_name: str) -> dict[str, EventDecoder]:
    """topic0 (0x-hex, lower case) -> decoder, for every non-anonymous event of an artifact."""
    out: dict[str, EventDecoder] = {}
    for item in artifact(artifact_name).abi:
        if item.get("type") != "event" or item.get("anonymous"):
            continue
        inputs = item["inputs"]
        sig = f"{item['name']}({','.join(_canonical(i) for i in inputs)})"
        topic0 = "0x" + keccak(text=sig).hex()
        indexed: list[tuple[str, Callable[[str], Any]]] = []
        names, types = [], []
        for i, inp in enumerate(inputs):
            name = inp["name"] or f"arg{i}"
            typ = _canonical(inp)
            if inp.get("indexed"):
                # Dynamic indexed values are stored as their keccak hash: keep the topic.
                indexed.append((name, _word_decoder(typ) or (lambda w: w)))
            else:
                names.append(name)
                types.append(typ)
        words = [_word_decoder(t) for t in types]
        fast = None if any(w is None for w in words) else [w for w in words if w is not None]
        # The template's slots follow the args dict's order: indexed first, then data.
        slots: list[tuple[str, str | None]] = []
        for i, inp in sorted(enumerate(inputs), key=lambda p: not p[1].get("indexed")):
            typ = _canonical(inp)
            if inp.get("indexed") and _word_decoder(typ) is None:
                slot: str | None = '"%s"'  # a dynamic value's topic: its keccak as 0x-hex
            elif inp.get("indexed") or fast is not None:
                slot = _json_slot(typ)
            else:
                slot = None  # eth_abi decodes it: json.dumps writes it
            slots.append((inp["name"] or f"arg{i}", slot))
        template = None
        if all(slot is not None for _, slot in slots):
            # Argument names are Solidity identifiers: json.dumps leaves them as they are, and
            # neither they nor hex nor digits contain anything COPY's text format escapes.
            template = (
                "{"
                + ",".join(f"{_JSON.encode(n).replace('%', '%%')}:{slot}" for n, slot in slots)
                + "}"
            )
        out[topic0] = EventDecoder(item["name"], topic0, indexed, names, types, fast, template)
    return out


@dataclass(frozen=True)
class _Contract:
    key: str
    artifact: str
    address: str


def decode_logs(
    chain_id: int, logs: Iterable[dict[str, Any]], contracts: dict[str, _Contract], confirmed: bool
) -> list[ChainEvent]:
    """Decode raw eth_getLogs entries; logs of unknown contracts or events are skipped."""
    out: list[ChainEvent] = []
    for lg in logs:
        if lg.get("removed"):
            continue
        c = contracts.get(lg["address"].lower())
        topics = lg["topics"]
        if c is None or not topics:
            continue
        dec = decoders_for(c.artifact).get(topics[0].lower())
        if dec is None:
            continue
        args = dec.decode(topics, lg["data"])
        if args is None:
            continue
        out.append(
            ChainEvent(
                chain_id=chain_id,
                contract_key=c.key,
                contract_address=c.address,
                contract_name=c.artifact,
                event_name=dec.name,
                args=args,
                block_number=int(lg["blockNumber"], 16),
                block_hash=lg["blockHash"],
                tx_hash=lg["transactionHash"],
                log_index=int(lg["logIndex"], 16),
                confirmed=confirmed,
            )
        )
    return out

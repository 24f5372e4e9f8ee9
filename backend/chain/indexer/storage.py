"""Writing events: upserts, COPY text lines and the chunk decoder that turns a chunk's raw
logs straight into them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backend.chain.indexer.decoding import _JSON, EventDecoder, _Contract, _copy_text, decoders_for
from backend.chain.indexer.events import ChainEvent, Handler
from backend.chain.indexer_models import (
    Hash32,
)
from backend.core.upsert import insert_for


class _ReorgDuringFetch(RuntimeError):
    pass


def _upsert(
    session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str], update: list[str]
) -> None:
    if not rows:
        return
    stmt = insert_for(session, model)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: getattr(stmt.excluded, c) for c in update}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt, rows)


_EVENT_COLUMNS = (
    "chain_id",
    "contract_key",
    "contract_address",
    "event_name",
    "args",
    "block_number",
    "block_hash",
    "tx_hash",
    "log_index",
)


def _event_tuple(ev: ChainEvent) -> tuple[Any, ...]:
    return (
        ev.chain_id,
        ev.contract_key,
        ev.contract_address,
        ev.event_name,
        _JSON.encode(ev.args),
        ev.block_number,
        ev.block_hash,
        ev.tx_hash,
        ev.log_index,
    )


# tx_hash is bytea (Hash32): COPY takes it as hex after this prefix.
_TX = Hash32.COPY_PREFIX


def _copy_lines(events: Sequence[ChainEvent]) -> str:
    enc = _JSON.encode
    # Every column but args and contract_key is a number or hex: only those two need escaping.
    return "".join(
        f"{ev.chain_id}\t{_copy_text(ev.contract_key)}\t{ev.contract_address}\t{ev.event_name}\t"
        f"{_copy_text(enc(ev.args))}\t{ev.block_number}\t{ev.block_hash}\t{_TX}{ev.tx_hash[2:]}\t"
        f"{ev.log_index}\n"
        for ev in events
    )


@dataclass(frozen=True)
class _Route:
    """Where one event of one contract goes: its decoder, the start of its COPY lines (the
    columns that are the same for all its logs) and the handlers that want it."""

    contract: _Contract
    decoder: EventDecoder
    prefix: str
    sinks: tuple[list[ChainEvent], ...]  # the event lists of the handlers that want it
    steps: tuple[Callable[[tuple[Any, ...]], None], ...]  # the folds' bound steps
    values: Callable[[list[str], str], tuple[Any, ...] | None]  # EventDecoder.values
    # prefix + the args' JSON template ('%' of the prefix doubled): one %-format of the
    # values makes the line up to the args column. None: json.dumps of the args dict.
    head: str | None
    names: tuple[str, ...]
    slow: bool  # a ChainEvent or the args dict is needed (handlers without fold, keep_events)


class _ChunkDecoder:
    """Turns a chunk's raw logs straight into COPY lines, in one pass.

    A ChainEvent is only built for the events some handler wants (or for every event when
    `keep_events`, i.e. no COPY), and handlers are matched once per contract and event, not
    once per log: on the hot path a log costs one generated decode of its words into a tuple
    (EventDecoder.values), one %-format, one f-string and the folds' steps (bound to the
    event's argument names once per chunk, see _Fold.bind)."""

    def __init__(
        self,
        chain_id: int,
        contracts: dict[str, _Contract],
        handlers: Sequence[Handler],
        *,
        keep_events: bool,
    ) -> None:
        self.chain_id = chain_id
        # Per handler, in registration order, its events in chain order (as _run_handlers),
        # or for a handler with a _Fold, the fold's state.
        self.handled: list[tuple[Handler, list[ChainEvent], dict[str, Any]]] = [
            (h, [], {}) for h in handlers
        ]
        self.events: list[ChainEvent] | None = [] if keep_events else None
        self.blocks: dict[int, str] = {}  # block number -> the hash its logs name
        # This chunk's events for handlers: their block_time is set from the block headers
        # once the chunk's headers are read (_Indexer._index_chunk).
        self.untimed: list[ChainEvent] = []
        self.for_handlers: list[ChainEvent] = []  # every chunk's: their subject is set at the end
        self.count = 0
        self._routes: dict[str, dict[str, _Route]] = {}
        # The handlers of each event name, still in registration order: a contract's event is
        # matched against those only, not against every handler (contracts x events x handlers
        # calls per chunk made a chunk of a few logs cost about 7 ms).
        by_event: dict[str, list[tuple[Handler, list[ChainEvent], dict[str, Any]]]] = {}
        for entry in self.handled:
            by_event.setdefault(entry[0].event_name, []).append(entry)
        for addr, c in contracts.items():
            by_topic: dict[str, _Route] = {}
            for topic0, dec in decoders_for(c.artifact).items():
                prefix = f"{chain_id}\t{_copy_text(c.key)}\t{c.address}\t{_copy_text(dec.name)}\t"
                wanted = [
                    (h, sink, state)
                    for h, sink, state in by_event.get(dec.name, ())
                    if h.matches_source(dec.name, c.key, c.artifact, c.address)
                ]
                sinks = tuple(sink for h, sink, _ in wanted if h.fold is None)
                names = dec.names
                steps = tuple(
                    h.fold.bind(state, c.address, names)
                    for h, _, state in wanted
                    if h.fold is not None
                )
                head = (
                    None
                    if dec.json_template is None
                    else prefix.replace("%", "%%") + dec.json_template
                )
                by_topic[topic0] = _Route(
                    c,
                    dec,
                    prefix,
                    sinks,
                    steps,
                    dec.values,
                    head,
                    names,
                    bool(sinks) or keep_events or head is None,
                )
            self._routes[addr] = by_topic

    def feed(self, logs: Iterable[dict[str, Any]]) -> str:
        """Decode `logs` (chain order); returns their COPY text. Logs of unknown contracts or
        events are skipped, as in decode_logs."""
        lines: list[str] = []
        append = lines.append
        blocks = self.blocks
        routes = self._routes
        tx = _TX
        last_hex, last_hash, number = "", "", -1
        for lg in logs:
            topics = lg["topics"]
            if not topics or lg.get("removed"):
                continue
            # Nodes answer in lower case: try that before paying for .lower().
            address, topic0 = lg["address"], topics[0]
            by_topic = routes.get(address) or routes.get(address.lower())
            route = (
                None if by_topic is None else (by_topic.get(topic0) or by_topic.get(topic0.lower()))
            )
            if route is None:
                continue
            values = route.values(topics, lg["data"])
            if values is None:
                continue
            block_hash = lg["blockHash"]
            if lg["blockNumber"] != last_hex or block_hash != last_hash:
                # Logs come grouped by block: parse the number and check the hash once.
                last_hex, last_hash = lg["blockNumber"], block_hash
                number = int(last_hex, 16)
                if blocks.setdefault(number, block_hash) != block_hash:
                    raise _ReorgDuringFetch(f"two hashes for block {number} in one answer")
            tx_hash = lg["transactionHash"]
            log_index = int(lg["logIndex"], 16)
            for step in route.steps:
                step(values)
            if route.slow:
                self._slow(route, values, number, block_hash, tx_hash, log_index, append)
                continue
            # Hashes and numbers need no COPY escaping; nor does a template's output.
            append(
                f"{route.head % values}\t{number}\t{block_hash}\t{tx}{tx_hash[2:]}\t{log_index}\n"  # type: ignore[operator]
            )
        self.count += len(lines)
        return "".join(lines)

    def _slow(
        self,
        route: _Route,
        values: tuple[Any, ...],
        number: int,
        block_hash: str,
        tx_hash: str,
        log_index: int,
        append: Callable[[str], None],
    ) -> None:
        """The rest of `feed` for a log that needs its args dict or a ChainEvent."""
        args = dict(zip(route.names, values, strict=True))
        dec = route.decoder
        append(
            f"{route.prefix}{dec.args_json(args)}\t{number}\t{block_hash}\t{_TX}{tx_hash[2:]}"
            f"\t{log_index}\n"
        )
        if route.sinks or self.events is not None:
            c = route.contract
            ev = ChainEvent(
                self.chain_id,
                c.key,
                c.address,
                c.artifact,
                dec.name,
                args,
                number,
                block_hash,
                tx_hash,
                log_index,
            )
            if route.sinks:
                self.untimed.append(ev)
                self.for_handlers.append(ev)
            for sink in route.sinks:
                sink.append(ev)
            if self.events is not None:
                self.events.append(ev)

    def run_handlers(self, session: Session) -> None:
        """Apply the chunk's events, handler by handler in registration order."""
        for handler, events, state in self.handled:
            if handler.fold is not None:
                if state:
                    handler.fold.finish(session, self.chain_id, state)
            elif events:
                handler.apply(session, events)


def _can_copy(session: Session) -> bool:
    raw = session.connection().connection.driver_connection
    return session.get_bind().dialect.name == "postgresql" and hasattr(raw, "pgconn")


@contextmanager
def _copy_in(session: Session, model: Any) -> Iterator[Callable[[str], None]]:
    """COPY text-format lines into `model`'s table, in the session's transaction (psycopg 3)."""
    raw: Any = session.connection().connection.driver_connection
    cols = ", ".join(_EVENT_COLUMNS)
    with raw.cursor() as cur, cur.copy(f"COPY {model.__tablename__} ({cols}) FROM STDIN") as cp:
        yield cp.write


def store_events(session: Session, model: Any, events: Sequence[ChainEvent]) -> None:
    """Bulk-insert events: COPY on PostgreSQL (psycopg 3), executemany elsewhere."""
    if not events:
        return
    if _can_copy(session):
        with _copy_in(session, model) as write:
            # Written in slices so that PostgreSQL parses one while Python formats the next.
            for i in range(0, len(events), 2000):
                write(_copy_lines(events[i : i + 2000]))
        return
    session.execute(
        insert_for(session, model),
        [
            dict(
                zip(
                    _EVENT_COLUMNS,
                    (*_event_tuple(ev)[:4], ev.args, *_event_tuple(ev)[5:]),
                    strict=True,
                )
            )
            for ev in events
        ],
    )

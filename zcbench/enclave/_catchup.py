"""A continuing run's catch-up: the previous run's records after its snapshot, fed again.

A snapshot holds a strategy's state as of the batch before it; a run killed later logged more
batches (and their feedback) whose effect on the state the snapshot lacks. Right after a
continuing run's ``restore``, the host hands the enclave the previous run's records after the
snapshot record (for a snapshot of seq 0, a continuing run's own, from its start state on,
whose positions were its first batch's context) up to the final checkpoint the boot's link
names, in bounded chunks, with the compact range of the records before the first one sent.
:class:`CatchUp` appends each record's leaf to that range and holds the records to the log's
shape: consecutive indices, batches in seq order from the snapshot's, a feedback record for
the batch that follows it, each batch's IN record followed by its OUT record. It feeds the
batches to the strategy exactly as the live enclave did (each with the context logged for it)
and requires the signals to equal the logged OUT body byte for byte. Only when the range has
reached the checkpoint's size and its root equals the checkpoint's is the catch-up done
(:meth:`CatchUp.finish`); until then, and after any refusal, the strategy's state is not to be
used (the runtime then refuses every batch). What the strategy returns is never acted on: the
previous run acted, or did not, on those signals (the start state's ``not_acted``).

This module knows no channel and no key; the runtime (:mod:`zcbench.enclave.runtime`) owns
the order of requests and logs the ``caught_up`` record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from zcbench.auditlog.link import RunLink
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.records import decode_record
from zcbench.errors import DataError
from zcbench.strategy import (
    Context,
    Strategy,
    apply_strategy,
    decode_batch,
    decode_context,
    decode_start,
    encode_signals,
    is_context,
    is_start,
)

__all__ = ["MAX_CATCH_UP_RECORDS", "CatchUp", "CatchUpRefused"]

MAX_CATCH_UP_RECORDS: Final = 4096
"""Most records one ``catch_up`` request carries (its bytes are bounded by the frame)."""
_MAX_RANGE: Final = 64


class CatchUpRefused(Exception):
    """A catch-up the enclave refuses: ``code`` names why (``catch_up_proof``: the records do
    not reach the checkpoint; ``catch_up_records``: they are not a log's records in order;
    ``catch_up_signals``: the strategy's signals differ from the logged ones)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class CatchUp:
    """One catch-up in progress (module docstring): ``first`` is the index of the first record
    sent, ``hashes`` the compact range of the records before it, ``seq`` the seq of the batch
    the restored snapshot comes before."""

    def __init__(self, strategy: Strategy, link: RunLink, first: int, hashes: Sequence[bytes],
                 seq: int) -> None:
        if len(hashes) > _MAX_RANGE or not all(type(h) is bytes for h in hashes):
            raise CatchUpRefused("catch_up_proof", "the compact range is not a list of hashes")
        try:
            self._range = CompactRange(first, list(hashes))
        except ValueError as exc:
            raise CatchUpRefused("catch_up_proof", f"a bad compact range: {exc}") from None
        if first > link.size:
            raise CatchUpRefused("catch_up_proof", f"record {first} lies past the previous "
                                 f"run's final checkpoint (size {link.size})")
        self._strategy = strategy
        self._link = link
        self._seq = seq  # the next batch's
        self._context: Context | None = None
        self._pending: tuple[int, int, bytes] | None = None  # OUT due: index, seq, body
        self.first = first
        self.batches = 0

    @property
    def next_index(self) -> int:
        """The index of the next record expected."""
        return self._range.size

    def take(self, records: Sequence[bytes]) -> None:
        """Append, check and feed the next records (in log order)."""
        if len(records) > MAX_CATCH_UP_RECORDS:
            raise CatchUpRefused("catch_up_records", f"at most {MAX_CATCH_UP_RECORDS} records "
                                 "a request")
        for data in records:
            index = self._range.size
            if index >= self._link.size:
                raise CatchUpRefused("catch_up_proof", f"record {index} lies past the previous "
                                     f"run's final checkpoint (size {self._link.size})")
            if type(data) is not bytes:
                raise CatchUpRefused("catch_up_records", f"record {index} is not bytes")
            try:
                record = decode_record(data)
            except DataError as exc:
                raise CatchUpRefused("catch_up_records", f"record {index} does not decode: "
                                     f"{str(exc).splitlines()[0]}") from None
            if record.index != index:
                raise CatchUpRefused("catch_up_records", f"record {record.index} where record "
                                     f"{index} comes (one left out, or out of order)")
            self._range.append(leaf_hash(data))
            self._feed(index, record.kind, record.seq, record.body)

    def _feed(self, index: int, kind: str, seq: int | None, body: bytes) -> None:
        if self._pending is not None:
            at, want_seq, want = self._pending
            if kind != "out" or seq != want_seq:
                raise CatchUpRefused("catch_up_records", f"record {index} is not the OUT record "
                                     f"of batch {want_seq} (its IN record is {at})")
            if body != want:
                raise CatchUpRefused("catch_up_signals", f"the strategy's signals for batch "
                                     f"{want_seq} differ from the OUT record {index} the "
                                     "previous run logged")
            self._pending = None
            return
        if kind == "out":
            raise CatchUpRefused("catch_up_records", f"record {index} is an OUT record without "
                                 "its batch")
        if kind != "in":
            return  # notes (snapshots, controls, clocks) do not reach the strategy
        assert seq is not None  # an IN record has one (records.py)
        try:
            if index == 1 and seq == 0 and is_start(body):
                self._context = Context(0, positions=decode_start(body).positions)
                return
            if seq != self._seq:
                raise DataError(f"it is of batch {seq}, batch {self._seq} is next")
            if is_context(body):
                self._context = decode_context(body, seq=seq)
                return
            batch = decode_batch(body, seq=seq)
        except DataError as exc:
            raise CatchUpRefused("catch_up_records", f"record {index}: "
                                 f"{str(exc).splitlines()[0]}") from None
        context, self._context = self._context, None
        signals = apply_strategy(self._strategy, batch, context)  # StrategyError leaves as is
        self._pending = (index, seq, encode_signals(signals))
        self._seq += 1
        self.batches += 1

    def finish(self) -> int:
        """The number of batches fed, once the records reached the checkpoint the boot's link
        names (its size and root)."""
        if self._pending is not None:
            raise CatchUpRefused("catch_up_records", f"batch {self._pending[1]}'s OUT record "
                                 "is missing")
        if self._range.size != self._link.size:
            raise CatchUpRefused("catch_up_proof", f"the records end at {self._range.size}, the "
                                 f"previous run's final checkpoint has {self._link.size}")
        if self._range.root() != self._link.root:
            raise CatchUpRefused("catch_up_proof", "the records do not give the root of the "
                                 "previous run's final checkpoint: edited, or not its log's")
        return self.batches

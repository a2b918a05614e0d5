"""The channel between host and enclave: frames, messages, sequence checks and transports.

A frame is a 4-byte big-endian length and one canonical CBOR map carrying ``v`` (the protocol
version) and ``type``; every message type has a fixed set of typed fields
(:data:`MESSAGE_FIELDS`). Transports are ``unix`` (``AF_UNIX``, local), ``vsock`` (``AF_VSOCK``,
Nitro) and an in-memory pair for tests, all over one stream implementation
(:class:`Connection`). The channel carries batches and signals as opaque bytes: it never
interprets strategy data.

Faults: an ill-typed, unknown-type, wrong-version or non-CBOR frame raises a non-fatal
:class:`FrameError` (answer with :meth:`Connection.reject`, keep going); an oversize length or a
truncated frame raises a fatal one and the connection is closed with the reason; a vanished peer
raises :class:`ChannelClosed`. Memory use is bounded by ``max_frame``.
"""

from zcbench.channel._frames import (
    HEADER,
    MAX_FRAME,
    MAX_LEDGER_BATCH,
    MAX_LEDGER_ENTRY,
    MAX_LEDGER_STATE,
    MESSAGE_FIELDS,
    PROTOCOL_VERSION,
    ChannelClosed,
    FrameError,
    Message,
    decode_body,
    encode_frame,
    error_message,
)
from zcbench.channel._sequence import SequenceGuard
from zcbench.channel._stream import ByteStream, Connection
from zcbench.channel._transports import (
    TRANSPORTS,
    VMADDR_CID_ANY,
    Listener,
    MemoryStream,
    SocketTransport,
    UnixTransport,
    VsockTransport,
    connect,
    listen,
    memory_pair,
    private_socket_dir,
)

__all__ = [
    "HEADER",
    "MAX_FRAME",
    "MAX_LEDGER_BATCH",
    "MAX_LEDGER_ENTRY",
    "MAX_LEDGER_STATE",
    "MESSAGE_FIELDS",
    "PROTOCOL_VERSION",
    "TRANSPORTS",
    "VMADDR_CID_ANY",
    "ByteStream",
    "ChannelClosed",
    "Connection",
    "FrameError",
    "Listener",
    "MemoryStream",
    "Message",
    "SequenceGuard",
    "SocketTransport",
    "UnixTransport",
    "VsockTransport",
    "connect",
    "decode_body",
    "encode_frame",
    "error_message",
    "listen",
    "memory_pair",
    "private_socket_dir",
]

"""zcbench.serve: the proof service, what LPs and auditors verify over HTTP (DESIGN.md).

* :mod:`~zcbench.serve.tiles`    a run's log as C2SP tlog-tiles: the writer that follows the log,
  the reader that recomputes roots from tiles
* :mod:`~zcbench.serve.readers`  bearer-token readers (tokens stored hashed) and their scopes
* :mod:`~zcbench.serve.control`  the run's control socket: fresh attestations from its enclave
* :mod:`~zcbench.serve.app`      the ASGI app (Starlette) and its server (uvicorn)
* :mod:`~zcbench.serve.remote`   the LP's side: ``verify_remote`` over HTTP, with saved state

It must not hold a key of the enclave or change a run folder (it writes tiles elsewhere).
"""

from zcbench.serve.remote import RemoteReport, RemoteVerificationError, check_remote, verify_remote
from zcbench.serve.tiles import RunTiles, TileReader, TileWriter

__all__ = [
    "RemoteReport",
    "RemoteVerificationError",
    "RunTiles",
    "TileReader",
    "TileWriter",
    "check_remote",
    "verify_remote",
]

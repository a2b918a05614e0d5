"""zcbench.venue: where orders go and what comes back (DESIGN.md, "Venues and reconciliation").

* :mod:`~zcbench.venue.orders`     orders, cancel/replace requests and executions: the one
  representation the paper venue, the FIX adapter, the drop copy and reconciliation share
* :mod:`~zcbench.venue.paper`      the deterministic paper venue (resting orders, partial fills
  against quoted size, IOC/FOK/DAY/GTC)
* :mod:`~zcbench.venue.fix`        a FIX 4.4 engine: the strict codec, the session layer, the
  venue simulator (acceptor) and the initiator the execution layer uses
* :mod:`~zcbench.venue.reconcile`  the run logs and journals against the venue's statement

The host's execution layer depends on it; it uses ``zcbench.host`` only where reconciliation
reads journals (``zcbench.host.execution.read_journal``, the one journal reader, lazily).
"""

from zcbench.venue.orders import (
    EXEC_TYPES,
    ORD_STATUSES,
    ORDER_TYPES,
    TIFS,
    Cancel,
    Execution,
    Order,
    Replace,
    cl_ord_id_for,
    order_from_signal,
    signal_hash,
    signal_of_cl_ord_id,
)
from zcbench.venue.paper import MARKET_COLUMNS, OpenOrder, PaperVenue, simulate

__all__ = [
    "EXEC_TYPES",
    "MARKET_COLUMNS",
    "ORDER_TYPES",
    "ORD_STATUSES",
    "TIFS",
    "Cancel",
    "Execution",
    "OpenOrder",
    "Order",
    "PaperVenue",
    "Replace",
    "cl_ord_id_for",
    "order_from_signal",
    "signal_hash",
    "signal_of_cl_ord_id",
    "simulate",
]

"""A FIX 4.4 engine of zcbench's own (DESIGN.md, "Venues and reconciliation").

* :mod:`~zcbench.venue.fix.codec`      strict, bounded tag=value codec; the user-defined tags
* :mod:`~zcbench.venue.fix.messages`   application messages to and from zcbench.venue.orders
* :mod:`~zcbench.venue.fix.session`    the session layer: persisted sequence numbers, resend,
  gap fill, logon, heartbeats, logout
* :mod:`~zcbench.venue.fix.sim`        the venue simulator (acceptor) and its drop copy
* :mod:`~zcbench.venue.fix.initiator`  :class:`FixVenue`, the execution layer's FIX venue
"""

from zcbench.venue.fix.codec import FixMessage, GarbledMessage, InvalidMessage, decode, encode
from zcbench.venue.fix.initiator import FixVenue, parse_venue_url
from zcbench.venue.fix.session import Session, SessionEvent, SessionStore
from zcbench.venue.fix.sim import DROP_COPY_ID, SIM_COMP_ID, DropCopy, VenueSimulator

__all__ = [
    "DROP_COPY_ID",
    "SIM_COMP_ID",
    "DropCopy",
    "FixMessage",
    "FixVenue",
    "GarbledMessage",
    "InvalidMessage",
    "Session",
    "SessionEvent",
    "SessionStore",
    "VenueSimulator",
    "decode",
    "encode",
    "parse_venue_url",
]

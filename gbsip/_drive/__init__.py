"""The loop side of gbsip's sans-IO cores, written once for every role.

Each role — :class:`gbsip.Registrar`, :class:`gbsip.Device`,
:class:`gbsip.Simulator`, the conformance rigs, the Locust users — is a C
core (or a scripted peer) plus the same four pieces from here:

- :class:`Driver` (``driver.py``): the one timer, armed at the core's next
  deadline; after every input the role's output is flushed, its events are
  drained and the timer re-armed, by one rule.
- :class:`EventStream` (``events.py``): a role's events kept in order
  (bounded), given to listeners as they happen, iterated with ``async for``
  and awaited by type.
- :class:`SIPStream` (``stream.py``): one TCP connection carrying SIP,
  framed by :class:`gbsip.StreamParser`, with one policy for garbage.
- :class:`Clock` (``clock.py``): integer milliseconds of the loop's
  monotonic clock for the cores, Unix time for people.
"""
from gbsip._drive.clock import Clock
from gbsip._drive.driver import Driver
from gbsip._drive.events import EventStream
from gbsip._drive.lifetime import Lifetime
from gbsip._drive.stream import SIPStream

__all__ = ["Clock", "Driver", "EventStream", "Lifetime", "SIPStream"]

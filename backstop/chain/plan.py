"""``deploy --plan`` and ``deploy --apply``: how a config differs from a live suite, in human units,
and the timelocked calls that bring the suite to it (docs/design.md §10, §11; docs/deploy.md).

A listed market's parameters and the sequencer feed change only through the engine's timelock:
``schedule…`` (the admin), then, from ``eta = schedule time + PARAMS_DELAY`` until ``eta +
EXECUTION_WINDOW``, ``execute…`` (the admin); the guardian or the admin may ``cancel…`` at any
time. The config is the truth: :func:`plan_target` compares, for one target (a market or the
sequencer), what the chain has, what the chain has scheduled and what the config wants, and says
what to do:

============  ===========================================  =====================================
status        when                                         ``--apply`` sends
============  ===========================================  =====================================
``schedule``  the config differs, nothing is scheduled     ``schedule…``
              (or only an expired change)
``wait``      the config's change is scheduled, not due    nothing (says when it will be)
``execute``   the config's change is scheduled and due     ``execute…``
``replace``   a different change is scheduled              ``cancel…`` then ``schedule…``
``cancel``    the chain already matches the config, but    ``cancel…``
              a change is scheduled
============  ===========================================  =====================================

The functions here are pure (tuples in, :class:`Update` out), so the decision table is tested
without a chain (``tests/unit/test_plan.py``); :mod:`backstop.chain.manifest` reads the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from backstop.units import WAD

#: ``UpdateTimelock.EXECUTION_WINDOW``: how long a scheduled change stays executable after its eta.
EXECUTION_WINDOW = 14 * 86_400
#: The reward cap that means "no cap" (``type(uint128).max``).
NO_CAP = 2**128 - 1
#: The sequencer's timelock target id in the engine (``SEQUENCER_TARGET``).
SEQUENCER = "sequencer"

#: ``IMarginEngine.MarketParams`` fields in order: (field, human name, unit).
MARKET_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("feed", "feed", "address"),
    ("heartbeat", "heartbeat", "seconds"),
    ("imRatio", "initial margin", "ratio"),
    ("mmRatio", "maintenance margin", "ratio"),
    ("keeperRewardRatio", "keeper reward", "ratio"),
    ("insuranceFeeRatio", "insurance fee", "ratio"),
    ("priceBandRatio", "price band", "ratio"),
    ("makerFeeRatio", "maker fee", "ratio"),
    ("takerFeeRatio", "taker fee", "ratio"),
    ("openInterestCap", "open interest cap", "base"),
    ("keeperRewardCap", "keeper reward cap", "quote"),
)
SEQUENCER_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("feed", "sequencer feed", "address"),
    ("gracePeriod", "grace period", "seconds"),
)
ZERO_ADDRESS = "0x" + "0" * 40


def human(value: Any, unit: str) -> str:
    """``value`` as an operator reads it: ratios in percent (``5 %``), WAD amounts in whole units
    with thousands separators, seconds with a readable duration, addresses as given."""
    if unit == "address":
        return "none" if str(value).lower() == ZERO_ADDRESS else str(value)
    value = int(value)
    if unit == "ratio":
        return f"{_plain(Decimal(value) * 100 / WAD)} %"
    if unit in ("base", "quote"):
        if unit == "quote" and value == NO_CAP:
            return "no cap"
        return _grouped(Decimal(value) / WAD)
    if unit == "seconds":
        return f"{value:,} s ({duration(value)})" if value >= 60 else f"{value} s"
    raise ValueError(f"unknown unit {unit!r}")


def _plain(d: Decimal) -> str:
    text = format(d.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _grouped(d: Decimal) -> str:
    whole, _, frac = _plain(d).partition(".")
    return f"{int(whole):,}" + (f".{frac}" if frac else "")


def duration(seconds: int) -> str:
    """``2 d 3 h``, ``5 h 20 min``, ``45 min``, ``30 s``: the two largest units."""
    seconds = max(0, int(seconds))
    parts = []
    for size, name in ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")):
        if seconds >= size and len(parts) < 2:
            parts.append(f"{seconds // size} {name}")
            seconds %= size
    return " ".join(parts) or "0 s"


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def timeline(eta: int, now: int) -> str:
    """``executable from <eta> (in <eta − now>) until <eta + EXECUTION_WINDOW>``."""
    return f"executable from {when(eta)} (in {duration(eta - now)}) until {when(eta + EXECUTION_WINDOW)}"


@dataclass(frozen=True)
class Change:
    """One parameter that differs: ``ETH maintenance margin 5 % → 6 %``."""

    target: str
    field: str
    name: str
    unit: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.target} {self.name} {human(self.before, self.unit)} → {human(self.after, self.unit)}"


@dataclass(frozen=True)
class Update:
    """What one timelock target needs. ``market_id`` is None for the sequencer; ``wanted`` is the
    full parameter tuple the config asks for (``MarketParams``, or ``(feed, grace period)``);
    ``scheduled``/``eta`` what the chain has scheduled (``eta`` 0: nothing)."""

    target: str
    market_id: int | None
    status: str
    changes: tuple[Change, ...]
    current: tuple
    wanted: tuple
    scheduled: tuple | None
    eta: int
    now: int

    @property
    def chain_differs(self) -> bool:
        """Whether the chain's values differ from the config's (every status but ``cancel``)."""
        return self.status != "cancel"

    @property
    def due_until(self) -> int:
        return self.eta + EXECUTION_WINDOW

    def describe(self, delay: int) -> list[str]:
        """The plan's lines for this target (what ``--plan`` prints)."""
        lines = [f"  {c}" for c in self.changes]
        if self.status == "schedule":
            head = f"{self.target}: to schedule; executable {duration(delay)} after scheduling, for {duration(EXECUTION_WINDOW)}"
        elif self.status == "wait":
            head = f"{self.target}: scheduled, {timeline(self.eta, self.now)}"
        elif self.status == "execute":
            head = f"{self.target}: scheduled and due (since {when(self.eta)}, until {when(self.due_until)}): to execute"
        elif self.status == "replace":
            head = (
                f"{self.target}: a different change is scheduled (eta {when(self.eta)}): to cancel and "
                f"schedule the config's; executable {duration(delay)} after scheduling"
            )
        else:  # cancel
            head = f"{self.target}: matches the config, but a change is scheduled (eta {when(self.eta)}): to cancel"
            lines = [f"  scheduled: {c}" for c in self.changes]
        return [head, *lines]


def _same(a: Any, b: Any) -> bool:
    return str(a).lower() == str(b).lower()


def changes_between(target: str, fields: tuple, before: tuple, after: tuple) -> tuple[Change, ...]:
    """The fields of ``after`` that differ from ``before``, named and in field order."""
    return tuple(
        Change(target, field, name, unit, b, a)
        for (field, name, unit), b, a in zip(fields, before, after, strict=True)
        if not _same(a, b)
    )


def plan_target(
    target: str,
    market_id: int | None,
    fields: tuple,
    current: tuple,
    wanted: tuple,
    scheduled: tuple | None,
    eta: int,
    now: int,
) -> Update | None:
    """What ``target`` needs (module docstring's table), or None when the chain has the config's
    values and nothing live is scheduled. An expired change (``now > eta + EXECUTION_WINDOW``) is
    treated as absent: it can no longer run, and a new ``schedule…`` replaces it."""
    live = eta != 0 and now <= eta + EXECUTION_WINDOW
    differs = changes_between(target, fields, current, wanted)
    if not live:
        if not differs:
            return None
        status = "schedule"
    elif not differs:
        # The chain has the config's values, yet a change is scheduled: drop it rather than leave
        # an announcement of something the config does not want.
        status = "cancel"
        differs = changes_between(target, fields, current, scheduled or current)
    elif scheduled is not None and all(_same(a, b) for a, b in zip(scheduled, wanted, strict=True)):
        status = "execute" if now >= eta else "wait"
    else:
        status = "replace"
    return Update(
        target, market_id, status, differs, tuple(current), tuple(wanted), scheduled, eta if live else 0, now
    )

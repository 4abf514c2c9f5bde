"""The keeper's records: one pass's report, the persisted account index (cursor and accounts),
and the errors of a keeper that cannot start."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Counters the keeper keeps across passes (besides ``passes`` and ``rpc_retries``).
COUNTER_NAMES = (
    "scanned",
    "liquidatable",
    "sent",
    "confirmed",
    "failed",
    "lost_races",
    "unprofitable",
    "lag",
)


@dataclass
class PassReport:
    """What one pass did. ``sent``/``confirmed`` count transactions (a batch is one);
    ``liquidated`` lists the accounts liquidated whole, in chain order; ``lost_races`` the accounts
    a competitor or a price move took first; ``unprofitable`` the accounts not sent because their
    keeper reward was below the gas at the capped fee (a base fee above the cap counts as
    ``failed``). ``lag_blocks``: blocks the chain advanced past the
    pass's snapshot block by the time the pass ended."""

    scanned: int = 0
    liquidatable: int = 0
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    lost_races: int = 0
    unprofitable: int = 0
    lag_blocks: int = 0
    #: ``liquidateMany`` transactions sent, and partial steps confirmed.
    batches: int = 0
    partial_steps: int = 0
    liquidated: list[str] = field(default_factory=list)
    #: One hash per transaction sent: the one that mined when a re-priced replacement did.
    tx_hashes: list[str] = field(default_factory=list)
    #: Liquidatable accounts the keeper's capital (or market slots, or the inherit ceiling) could
    #: not take: each with the capital it would need (``backstop.decisions.Unabsorbable``).
    unabsorbable: list[Any] = field(default_factory=list)
    #: Accounts whose whole takeover the inherit ceiling refused (taken partially or not at all).
    ceiling_limited: list[str] = field(default_factory=list)
    #: Markets whose oracle price was stale or unreadable at the pass's block: name → the
    #: adapter's revert (``StalePrice``...).
    stale_markets: dict[str, str] = field(default_factory=dict)
    #: The keeper's own risk after the pass (``backstop.keeper.risk.OwnRisk``; None if its book
    #: could not be valued) and whether its buffer was under ``min_buffer``.
    own_risk: Any = None
    own_buffer_low: bool = False
    #: A stop was requested (SIGTERM/SIGINT): the pass sent nothing more once it was seen.
    stopped: bool = False


class KeeperStateError(Exception):
    """The state file cannot be used with this chain and engine."""


class KeeperConfigError(Exception):
    """The keeper cannot be built (missing ABI, engine without the expected functions)."""


@dataclass
class KeeperState:
    """The persisted index: every log up to ``cursor_block`` (inclusive) is reflected in
    ``accounts``; ``cursor_hash`` identifies that block, so a restarted local chain that reuses
    the chain id and the engine address is detected."""

    chain_id: int
    engine: str
    cursor_block: int
    accounts: list[str]
    cursor_hash: str | None = None

    @classmethod
    def load(cls, path: Path) -> KeeperState:
        try:
            raw = json.loads(path.read_text())
            return cls(
                chain_id=int(raw["chain_id"]),
                engine=str(raw["engine"]),
                cursor_block=int(raw["cursor_block"]),
                accounts=[str(a) for a in raw["accounts"]],
                cursor_hash=raw.get("cursor_hash"),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise KeeperStateError(f"{path}: unreadable keeper state ({err})") from err

    def save(self, path: Path) -> None:
        """Atomically (write a temporary file, then rename it over the old one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "chain_id": self.chain_id,
            "engine": self.engine,
            "cursor_block": self.cursor_block,
            "cursor_hash": self.cursor_hash,
            "accounts": self.accounts,
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(body, f, indent=1)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

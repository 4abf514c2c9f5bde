"""Playing a pass plan's actions in order, with the batch fallback (docs/keeper.md): a batch whose
dry run fails is split in halves (:func:`~backstop.decisions.capital.split_batch`), each tried in
turn, down to single accounts. Shared by the keeper (dry runs on chain) and the stress runner's
model backend (the model's revert is its dry run), so both play a plan the same way."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from backstop.decisions.batching import Batch, GasModel, split_batch
from backstop.decisions.capital import PartialStep
from backstop.units import WAD

#: The keeper's plan defaults (docs/keeper.md), shared with the stress runner's model keeper: keep
#: free collateral ≥ 10 % of IMR after every takeover, no partial step below 1 unit of quote
#: notional, batches of at most 5 M estimated gas, no inherit ceiling (``max_notional``).
DEFAULT_BUFFER_RATIO = WAD // 10
DEFAULT_MIN_STEP_NOTIONAL = WAD
DEFAULT_GAS_BUDGET = 5_000_000
DEFAULT_MAX_INHERIT_NOTIONAL: int | None = None


def play_actions(
    actions: Iterable[Batch | PartialStep],
    gas: GasModel,
    *,
    batch: Callable[[Batch], bool],
    step: Callable[[PartialStep], object],
    on_split: Callable[[Batch, tuple[Batch, Batch]], None] = lambda _b, _h: None,
) -> None:
    """Plays ``actions`` in order. ``batch(b)`` acts on a batch and returns whether its dry run
    passed; a failed batch of two or more accounts is split (``on_split`` is told) and its halves
    are played next, in order; a failed single account is the callee's to report. ``step(s)`` acts
    on a partial step, once (a step that fails is not retried)."""
    queue: deque[Batch | PartialStep] = deque(actions)
    while queue:
        action = queue.popleft()
        if isinstance(action, PartialStep):
            step(action)
            continue
        if batch(action) or len(action.accounts) == 1:
            continue
        halves = split_batch(action, gas)
        on_split(action, halves)
        queue.extendleft(reversed(halves))

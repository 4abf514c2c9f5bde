"""How much a keeper can take over in one pass, given its own capital (docs/keeper.md §"How the
keeper sizes its steps and batches"): a pure plan of whole takeovers (grouped into
``liquidateMany`` batches under a gas budget) and partial ``liquidatePosition`` steps.

The targets are ordered as :func:`~backstop.decisions.liquidation.plan_liquidations` orders them.
Walking that order, the plan carries a simulated keeper :class:`Book`, updated after every planned
action with the engine's own fill rule (docs/margin-math.md §"A fill": a takeover that nets against
the keeper's opposite position realizes the keeper's PnL on the netted fraction, ``r = −c − k``)
and the keeper reward ``K`` credited to its margin. An action is planned only if the simulated
keeper then keeps ``F' ≥ buffer_ratio·IMR'`` (which implies the engine's ``E' ≥ IMR'``) and, with
an inherit ceiling ``max_notional``, its gross notional ``Σ ceil(|size_m|·P_m)`` stays
``≤ max_notional`` (:func:`gross_notional`).

Integers only (WAD = 1e18 fixed point); no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from backstop.decisions.batching import Batch, GasModel, batches
from backstop.decisions.liquidation import AccountHealth, plan_liquidations
from backstop.units import mul_div_ceil, mul_wad_ceil, mul_wad_down, mul_wad_floor, mul_wad_up

#: A partial step is planned only if the account's equity after paying its ``K`` stays at least
#: this many wei above zero: the engine's own reading of that equity may differ by a rounding wei
#: or two (``PartialLiquidationBankrupt`` otherwise).
PARTIAL_SOLVENCY_SLACK = 3


@dataclass(frozen=True)
class MarketTerms:
    """One market's oracle price and risk parameters (WAD)."""

    market_id: int
    price: int
    im_ratio: int
    mm_ratio: int
    keeper_reward_ratio: int
    keeper_reward_cap: int
    insurance_fee_ratio: int


@dataclass(frozen=True)
class Valuation:
    """A book valued at the oracle prices (WAD): ``E``, ``IMR``, ``MMR``, free collateral ``F``."""

    collateral: int  # margin − pendingLoss
    equity: int
    imr: int
    mmr: int

    @property
    def free_collateral(self) -> int:
        """``F = min(margin − pendingLoss, E) − IMR``."""
        return min(self.collateral, self.equity) - self.imr


@dataclass(frozen=True)
class Book:
    """An account's margin, settled-to-be pending loss and positions:
    ``market_id -> (signed size, signed openNotional)`` (no zero sizes)."""

    account: str
    margin: int
    pending_loss: int
    positions: Mapping[int, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any(size == 0 for size, _ in self.positions.values()):
            raise ValueError(f"{self.account}: a position of size 0")
        object.__setattr__(self, "positions", dict(self.positions))

    def value(self, terms: Mapping[int, MarketTerms]) -> Valuation:
        """This book valued with ``terms`` (:func:`valuation`)."""
        return valuation(self, terms)

    def equity(self, terms: Mapping[int, MarketTerms]) -> int:
        """``E = margin − pendingLoss + Σ u_m``."""
        return valuation(self, terms).equity

    def imr(self, terms: Mapping[int, MarketTerms]) -> int:
        """``IMR = Σ ceil(N_m·imRatio)``."""
        return valuation(self, terms).imr

    def mmr(self, terms: Mapping[int, MarketTerms]) -> int:
        """``MMR = Σ ceil(N_m·mmRatio)``."""
        return valuation(self, terms).mmr

    def free_collateral(self, terms: Mapping[int, MarketTerms]) -> int:
        """``F = min(margin − pendingLoss, E) − IMR``."""
        return valuation(self, terms).free_collateral

    def notional(self, terms: Mapping[int, MarketTerms]) -> int:
        """The gross notional ``Σ ceil(|size_m|·P_m)`` (:func:`gross_notional`)."""
        return gross_notional(self, terms)


def gross_notional(book: Book, terms: Mapping[int, MarketTerms]) -> int:
    """``Σ N_m = Σ ceil(|size_m|·P_m)`` over ``book``'s positions (both sides count): what the
    inherit ceiling bounds. Raises ``ValueError`` for a market without terms."""
    return sum(mul_wad_up(abs(size), _terms(terms, m).price) for m, (size, _) in book.positions.items())


def valuation(book: Book, terms: Mapping[int, MarketTerms]) -> Valuation:
    """The one valuation: ``u_m = floor(size·P) − openNotional``, ``N_m = ceil(|size|·P)``,
    ``E = margin − pendingLoss + Σ u_m``, ``IMR``/``MMR = Σ ceil(N_m·ratio)`` (the engine's
    ``healthOf``). Raises ``ValueError`` for a market without terms."""
    upnl = imr = mmr = 0
    for m, (size, open_notional) in book.positions.items():
        t = _terms(terms, m)
        notional = mul_wad_up(abs(size), t.price)
        upnl += mul_wad_floor(size, t.price) - open_notional
        imr += mul_wad_up(notional, t.im_ratio)
        mmr += mul_wad_up(notional, t.mm_ratio)
    collateral = book.margin - book.pending_loss
    return Valuation(collateral=collateral, equity=collateral + upnl, imr=imr, mmr=mmr)


@dataclass(frozen=True)
class PartialStep:
    """``liquidatePosition(account, market_id, size)``: ``size`` base units (> 0) of one market."""

    account: str
    market_id: int
    size: int


@dataclass(frozen=True)
class Unabsorbable:
    """A liquidatable account the keeper can neither take over whole nor step into.
    ``capital_needed``: the extra margin that would let the whole takeover keep the buffer
    (for ``reason == "market_slots"`` or ``"ceiling"`` the need if slots or the inherit ceiling
    allowed it, possibly 0)."""

    account: str
    equity: int
    capital_needed: int
    reason: str  # "capital" | "market_slots" | "ceiling"


@dataclass(frozen=True)
class Skip:
    """A target that is not liquidatable: ``reason`` is ``"healthy"`` or ``"no_position"``."""

    account: str
    reason: str


@dataclass(frozen=True)
class PassPlan:
    """The actions of a pass in order, the accounts left, and the keeper's simulated book after
    every action (``keeper_after``). ``ceiling_limited``: the accounts, in order, whose whole
    takeover the inherit ceiling refused (then taken in partial steps, or not at all)."""

    actions: tuple[Batch | PartialStep, ...]
    unabsorbable: tuple[Unabsorbable, ...]
    skipped: tuple[Skip, ...]
    skipped_self: tuple[Book, ...]
    keeper_after: Book
    ceiling_limited: tuple[str, ...] = ()


# --- the engine's arithmetic, as the plan simulates it ------------------------------------------------


def _terms(terms: Mapping[int, MarketTerms], market_id: int) -> MarketTerms:
    try:
        return terms[market_id]
    except KeyError:
        raise ValueError(f"no terms for market {market_id}") from None


def _fill(position: tuple[int, int] | None, delta: int, price: int) -> tuple[int, int, int]:
    """docs/margin-math.md §"A fill": ``(size', openNotional', realized)`` after ``delta`` at ``price``."""
    size, open_notional = position or (0, 0)
    cost = mul_wad_ceil(delta, price)
    if size == 0 or (size > 0) == (delta > 0):  # increase or open
        return size + delta, open_notional + cost, 0
    if abs(delta) < abs(size):  # reduce: realize the netted fraction
        closed = mul_div_ceil(open_notional, abs(delta), abs(size))
        return size + delta, open_notional - closed, -cost - closed
    if abs(delta) == abs(size):  # close
        return 0, 0, -cost - open_notional
    opened = delta + size  # flip: close −size, open the rest from zero
    return opened, mul_wad_ceil(opened, price), -mul_wad_ceil(-size, price) - open_notional


def _apply(book: Book, market_id: int, delta: int, price: int, margin_delta: int) -> Book:
    """``book`` after a fill of ``delta`` at ``price`` in one market and ``margin_delta`` more margin."""
    positions = dict(book.positions)
    size, open_notional, realized = _fill(positions.get(market_id), delta, price)
    if size == 0:
        positions.pop(market_id, None)
    else:
        positions[market_id] = (size, open_notional)
    return Book(book.account, book.margin + realized + margin_delta, book.pending_loss, positions)


def whole_reward(book: Book, terms: Mapping[int, MarketTerms]) -> int:
    """``K = min(Σ floor(N_m·keeperRewardRatio_m), Σ keeperRewardCap_m)`` of ``liquidate``."""
    reward = cap = 0
    for m, (size, _) in book.positions.items():
        t = _terms(terms, m)
        reward += mul_wad_down(mul_wad_up(abs(size), t.price), t.keeper_reward_ratio)
        cap += t.keeper_reward_cap
    return min(reward, cap)


def step_reward(t: MarketTerms, size: int) -> int:
    """``K = min(floor(ceil(size·P)·keeperRewardRatio), keeperRewardCap)`` of ``liquidatePosition``."""
    return min(mul_wad_down(mul_wad_up(size, t.price), t.keeper_reward_ratio), t.keeper_reward_cap)


def _shortfall(book: Book, terms: Mapping[int, MarketTerms], buffer_ratio: int) -> int:
    """``ceil(buffer·IMR) − F``: how much free collateral ``book`` lacks (≤ 0: none)."""
    v = valuation(book, terms)
    return mul_wad_up(v.imr, buffer_ratio) - v.free_collateral


def _under_ceiling(book: Book, terms: Mapping[int, MarketTerms], max_notional: int | None) -> bool:
    """Whether ``book``'s gross notional is within the inherit ceiling (always, without one)."""
    return max_notional is None or gross_notional(book, terms) <= max_notional


def _take_whole(keeper: Book, target: Book, terms: Mapping[int, MarketTerms]) -> Book:
    """The keeper after ``liquidate(target)``: every position at its price, plus ``K``."""
    for m, (size, _) in target.positions.items():
        keeper = _apply(keeper, m, size, terms[m].price, 0)
    return _apply_margin(keeper, whole_reward(target, terms))


def _apply_margin(book: Book, amount: int) -> Book:
    return Book(book.account, book.margin + amount, book.pending_loss, book.positions)


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest ``q`` in ``[lo, hi]`` with ``ok(q)``, ``ok(lo)`` taken as true (binary search on
    a predicate true then false)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


# --- sizing a partial step ------------------------------------------------------------------------


def step_size(
    keeper: Book,
    account: Book,
    market_id: int,
    terms: Mapping[int, MarketTerms],
    buffer_ratio: int,
    max_notional: int | None = None,
) -> int:
    """The largest ``q ≤ |size|`` of ``account``'s position in ``market_id`` that the keeper can
    take with ``liquidatePosition`` and keep ``F' ≥ buffer·IMR'`` (and, with ``max_notional``, a
    gross notional ``≤ max_notional``), while the account keeps ``E − K(q) ≥
    PARTIAL_SOLVENCY_SLACK``; 0 if none.

    ``K(q)`` only grows with ``q``, so the account's bound is a binary search. For the keeper, the
    first ``min(|own opposite size|, |size|)`` units net against its position (IMR falls), the
    rest opens (IMR grows): if that netted part is feasible, the answer is the largest feasible
    ``q`` above it (binary search, monotone there); if not, the largest feasible ``q`` below it.
    The notional falls over the netted part and grows above it, like the IMR, so the same search
    holds; the answer is checked once more and is 0 if it does not fit."""
    t = _terms(terms, market_id)
    size = account.positions[market_id][0]
    sign = 1 if size > 0 else -1
    equity = valuation(account, terms).equity
    if equity - step_reward(t, 1) < PARTIAL_SOLVENCY_SLACK:
        return 0
    upper = _largest(1, abs(size), lambda q: equity - step_reward(t, q) >= PARTIAL_SOLVENCY_SLACK)

    def keeper_ok(q: int) -> bool:
        after = _apply(keeper, market_id, sign * q, t.price, step_reward(t, q))
        return _shortfall(after, terms, buffer_ratio) <= 0 and _under_ceiling(after, terms, max_notional)

    own = keeper.positions.get(market_id, (0, 0))[0]
    netted = min(abs(own), upper) if own * size < 0 else 0
    if netted > 0 and keeper_ok(netted):
        return upper if keeper_ok(upper) else _largest(netted, upper, keeper_ok)
    top = netted if netted > 0 else upper
    q = _largest(0, top, keeper_ok)
    return q if q == 0 or keeper_ok(q) else 0


def _after_step(account: Book, market_id: int, q: int, terms: Mapping[int, MarketTerms]) -> Book:
    """The account after giving up ``q`` units at ``P`` and paying ``K``, then (conservatively, as
    ``liquidate`` charges it) the insurance fee ``min(floor(N·feeRatio), max(E − K, 0))``."""
    t = terms[market_id]
    size = account.positions[market_id][0]
    after = _apply(account, market_id, -q if size > 0 else q, t.price, -step_reward(t, q))
    fee = mul_wad_down(mul_wad_up(q, t.price), t.insurance_fee_ratio)
    return _apply_margin(after, -min(fee, max(valuation(after, terms).equity, 0)))


def _partial_steps(
    keeper: Book,
    account: Book,
    terms: Mapping[int, MarketTerms],
    buffer_ratio: int,
    max_markets: int,
    min_step_notional: int,
    max_notional: int | None = None,
) -> tuple[list[PartialStep], Book]:
    """The steps into ``account``, largest notional first (ties by market id), and the keeper after
    them. A market needs a slot (held, or fewer than ``max_markets`` held); a step of notional
    below ``min_step_notional`` is skipped; the steps stop once the account is no longer
    liquidatable (``liquidatePosition`` would revert ``NotLiquidatable``)."""

    def notional(m: int) -> int:
        return mul_wad_up(abs(account.positions[m][0]), terms[m].price)

    steps: list[PartialStep] = []
    for m in sorted(account.positions, key=lambda m: (-notional(m), m)):
        if not _health(account, terms).liquidatable:
            break
        if m not in keeper.positions and len(keeper.positions) >= max_markets:
            continue
        t = terms[m]
        q = step_size(keeper, account, m, terms, buffer_ratio, max_notional)
        if q == 0 or mul_wad_up(q, t.price) < min_step_notional:
            continue
        steps.append(PartialStep(account.account, m, q))
        sign = 1 if account.positions[m][0] > 0 else -1
        keeper = _apply(keeper, m, sign * q, t.price, step_reward(t, q))
        account = _after_step(account, m, q, terms)
    return steps, keeper


def _health(book: Book, terms: Mapping[int, MarketTerms]) -> AccountHealth:
    v = valuation(book, terms)
    return AccountHealth(
        account=book.account,
        margin=book.margin,
        pending_loss=book.pending_loss,
        equity=v.equity,
        initial_margin=v.imr,
        maintenance_margin=v.mmr,
        has_positions=bool(book.positions),
    )


def plan_pass(
    targets: Iterable[Book],
    keeper: Book,
    terms: Mapping[int, MarketTerms],
    *,
    buffer_ratio: int,
    max_markets: int = 8,
    min_step_notional: int,
    gas: GasModel,
    max_notional: int | None = None,
) -> PassPlan:
    """The keeper's pass over ``targets`` with its own capital (docs/keeper.md §"How the keeper
    sizes its steps and batches").

    Non-liquidatable targets are skipped (``"healthy"``, ``"no_position"``), the keeper's own
    liquidatable book goes to ``skipped_self``, an account listed twice counts once (its first
    entry); the rest are walked in :func:`plan_liquidations` order with a simulated keeper book:

    - **whole** when the keeper's markets ∪ the account's are ≤ ``max_markets`` and, after the
      takeover, ``F' ≥ ceil(buffer_ratio·IMR')`` and (the inherit ceiling, when ``max_notional``
      is not None) the keeper's gross notional is ``≤ max_notional``; consecutive whole
      takeovers form :class:`Batch` es cut to ``gas.budget``;
    - else, if the account's equity covers a step's ``K`` (:func:`step_size`), **partial steps**,
      largest market notional first, never into a market beyond ``max_markets`` nor past the
      ceiling;
    - else (or if no step fits) :class:`Unabsorbable`, with the extra margin the whole takeover
      would need, ``max(ceil(buffer·IMR') − F', 0)``; reason ``"market_slots"`` when the whole
      takeover exceeds the slots and either needs no capital or the keeper has no slot for any
      market of the account, else ``"ceiling"`` when slots and capital allowed it but the
      ceiling did not, else ``"capital"``.

    An account whose whole takeover the ceiling refused is listed in ``ceiling_limited``.
    """
    if buffer_ratio < 0 or max_markets < 1 or min_step_notional < 0:
        raise ValueError("buffer_ratio and min_step_notional must be ≥ 0, max_markets ≥ 1")
    if max_notional is not None and max_notional < 0:
        raise ValueError("max_notional must be ≥ 0 (or None: no ceiling)")
    books: dict[str, Book] = {}
    for book in targets:
        books.setdefault(book.account.lower(), book)
    healths = [_health(b, terms) for b in books.values()]
    order = plan_liquidations(healths, keeper.account)
    skipped = tuple(
        Skip(h.account, "healthy" if h.has_positions else "no_position")
        for h in healths
        if not h.liquidatable
    )

    sim = keeper
    actions: list[Batch | PartialStep] = []
    group: list[tuple[str, int]] = []
    unabsorbable: list[Unabsorbable] = []
    limited: list[str] = []
    for account in order.targets:
        book = books[account.lower()]
        slots_ok = len(set(sim.positions) | set(book.positions)) <= max_markets
        after = _take_whole(sim, book, terms)
        need = max(_shortfall(after, terms, buffer_ratio), 0)
        ceiling_ok = _under_ceiling(after, terms, max_notional)
        if slots_ok and need == 0 and ceiling_ok:
            group.append((book.account, len(book.positions)))
            sim = after
            continue
        if not ceiling_ok:
            limited.append(book.account)
        steps: list[PartialStep] = []
        if valuation(book, terms).equity >= 0:
            steps, sim = _partial_steps(
                sim, book, terms, buffer_ratio, max_markets, min_step_notional, max_notional
            )
        if steps:
            actions.extend(batches(group, gas))
            group = []
            actions.extend(steps)
            continue
        no_slot = len(sim.positions) >= max_markets and not set(book.positions) & set(sim.positions)
        if not slots_ok and (need == 0 or no_slot):
            reason = "market_slots"
        elif not ceiling_ok and need == 0:
            reason = "ceiling"
        else:
            reason = "capital"
        unabsorbable.append(Unabsorbable(book.account, valuation(book, terms).equity, need, reason))
    actions.extend(batches(group, gas))
    return PassPlan(
        actions=tuple(actions),
        unabsorbable=tuple(unabsorbable),
        skipped=skipped,
        skipped_self=tuple(books[h.account.lower()] for h in order.skipped_self),
        keeper_after=sim,
        ceiling_limited=tuple(limited),
    )

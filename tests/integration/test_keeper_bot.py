"""The keeper's Silverback runner (backstop.keeper.bot.HeadRunner and run_bot) with a stand-in
service on Ape's test chain: one pass per new head (never twice on one head), SIGTERM through the
chained handler and Silverback's shutdown handler, and the halt after repeated handler errors."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest
from ape import chain
from silverback.utils import clean_hexbytes_dict

from backstop.keeper.bot import run_bot
from backstop.keeper.metrics import Monitor


class FakeKeeper:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.stopping = False

    def _event(self, level: int, event: str, **fields) -> None:
        self.events.append((event, fields))


class FakeService:
    """Heads from ``heads`` (block numbers into the test chain's blocks, one per poll); ``on_pass``
    runs in each pass; SIGTERM to this process after ``signal_after`` polls."""

    def __init__(self, heads: list[int], signal_after: int | None, fail: bool = False) -> None:
        self.keeper = FakeKeeper()
        self.monitor = Monitor()
        self.heads = heads
        self.signal_after = signal_after
        self.fail = fail
        self.polls = 0
        self.passes: list[int] = []
        self.signal_name: str | None = None
        self.finished = 0
        self.current: int | None = None
        self.lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return self.keeper.stopping

    def poll_head(self):
        self.polls += 1
        if self.signal_after is not None and self.polls == self.signal_after:
            os.kill(os.getpid(), signal.SIGTERM)
        number = self.heads[min(self.polls, len(self.heads)) - 1]
        self.current = number
        return clean_hexbytes_dict(dict(chain.provider.web3.eth.get_block(number)))

    def run_pass(self):
        with self.lock:
            self.passes.append(self.current)
            if self.fail:
                raise RuntimeError("boom")

    def on_signal(self, name: str) -> None:
        self.signal_name = name
        self.keeper.stopping = True

    def finish(self) -> None:
        self.keeper.stopping = True
        self.finished += 1


@pytest.fixture
def signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.fixture
def heads():
    chain.mine(3)
    head = chain.blocks.head.number
    return [head - 2, head - 1, head]


def test_one_pass_per_new_head_then_sigterm_stops_cleanly(signals, heads):
    a, b, c = heads
    # Six polls of a, four of b, then c until the signal (at poll 14).
    service = FakeService([a] * 6 + [b] * 4 + [c] * 10, signal_after=14)
    logging.getLogger("ape").setLevel(logging.WARNING)
    assert run_bot(service, poll_interval=0.02) is True
    assert service.passes == [a, b, c]  # never twice on one head
    assert service.signal_name == "SIGTERM"
    assert service.finished >= 1  # the bot's shutdown handler (and run_bot after it)
    assert not any(event == "halted" for event, _ in service.keeper.events)


def test_silverback_halts_the_bot_after_repeated_handler_errors(signals, heads):
    a, b, c = heads
    service = FakeService([a, b, c, a, b, c, a, b], signal_after=None, fail=True)
    assert run_bot(service, poll_interval=0.02) is False  # the script exits 1: restart it
    # Silverback's max_exceptions=3: the fourth failure in a row halts.
    assert len(service.passes) == 4
    assert ("halted", {"errors": 4, "reason": "handler errors in a row"}) in service.keeper.events
    assert service.finished >= 1

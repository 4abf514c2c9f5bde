"""The stress runner: a scenario (docs/scenario-format.md) played on the reference model or on a
fresh local deployment, checked step by step, reported as JSON, a chart and a table.

Modules, in import order: :mod:`~backstop.stress.results` (what a run produces),
:mod:`~backstop.stress.describe` (one-line renderings), :mod:`~backstop.stress.backend` (the seam
and the one step dispatch table), :mod:`~backstop.stress.model_backend`,
:mod:`~backstop.stress.chain_backend`, :mod:`~backstop.stress.runner`,
:mod:`~backstop.stress.chart`, :mod:`~backstop.stress.report` and :mod:`~backstop.stress.cli`.
"""

from backstop.stress.backend import STEP_HANDLERS, Players, ScenarioBackend
from backstop.stress.chain_backend import ChainBackend
from backstop.stress.cli import main, main_all, write_outputs
from backstop.stress.describe import describe, format_wad, progress_line
from backstop.stress.model_backend import MODEL_START_TIME, TEST_MNEMONIC, ModelBackend, derive_test_addresses
from backstop.stress.results import (
    AccountView,
    LiquidationRecord,
    Outcome,
    RunResult,
    Series,
    StepRecord,
    StepState,
)
from backstop.stress.runner import run

__all__ = [
    "MODEL_START_TIME",
    "STEP_HANDLERS",
    "TEST_MNEMONIC",
    "AccountView",
    "ChainBackend",
    "LiquidationRecord",
    "ModelBackend",
    "Outcome",
    "Players",
    "RunResult",
    "ScenarioBackend",
    "Series",
    "StepRecord",
    "StepState",
    "derive_test_addresses",
    "describe",
    "format_wad",
    "main",
    "main_all",
    "progress_line",
    "run",
    "write_outputs",
]

"""The liquidation keeper: read, decide (``backstop.decisions``), act. See :mod:`backstop.keeper.loop`."""

from backstop.keeper.engine_abi import EngineAbi, load_engine_abi
from backstop.keeper.loop import Keeper
from backstop.keeper.sender import SendError
from backstop.keeper.signer import LocalSigner, Signer
from backstop.keeper.state import KeeperConfigError, KeeperState, KeeperStateError, PassReport

__all__ = [
    "EngineAbi",
    "Keeper",
    "KeeperConfigError",
    "KeeperState",
    "KeeperStateError",
    "LocalSigner",
    "PassReport",
    "SendError",
    "Signer",
    "load_engine_abi",
]

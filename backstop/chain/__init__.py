"""Everything that talks to a chain: ABI and compiled artifacts (:mod:`~backstop.chain.abi`), RPC
retries (:mod:`~backstop.chain.rpc`), the EVM backends (:mod:`~backstop.chain.evm`), the pricing of
transactions (:mod:`~backstop.chain.tx`), deployment (:mod:`~backstop.chain.deploy`) and its
manifest and verification (:mod:`~backstop.chain.manifest`), the RPC checks before Ape connects
(:mod:`~backstop.chain.node`) and the node-side primitives of a fork rehearsal
(:mod:`~backstop.chain.fork`)."""

"""The fuzz machine's rules by area, each a mixin over ``tests.fuzz.core.MachineCore``: trading
(margin, orders, fills, cancellations, nonces), oracle (prices, feed ages, time), liquidation
(liquidations, the keeper, settlement), fund (stakes, exits, donations) and admin (market
parameters, pauses)."""

"""The risk lab (docs/design.md §12, docs/risk-lab.md): Monte Carlo stress of the waterfall.

- :mod:`backstop.risk.types`: the plain data the engines consume (markets, a population of
  paired positions, the fund, the keeper, price paths in WAD);
- :mod:`backstop.risk.config`: the strict YAML config (markets, insurance, population, price
  process, horizon, keeper);
- :mod:`backstop.risk.population` and :mod:`backstop.risk.paths`: the generated population and
  the price paths (GBM, Merton jump-diffusion, correlated assets, scripted shocks, a CSV replay);
- :mod:`backstop.risk.exact`: the exact engine, every path played on the reference model with
  the real keeper policy.
"""

"""The Binance façade: Simple Earn (flexible) over the catalog, the SPOT and FUNDING wallets, time,
and what ccxt's `binance` needs to load markets. Binance's field names live only here.
"""

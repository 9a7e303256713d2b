"""The Bitget v2 façade: Earn savings (catalog products), the spot funding account, time, and what
ccxt's `bitget` needs to load markets in classic mode. Bitget's field names live only here.
"""

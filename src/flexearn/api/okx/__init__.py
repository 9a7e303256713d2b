"""The OKX v5 façade: Simple Earn flexible, funding balances and what clients need around them.

Wire types, the error table and authentication follow OKX's documents (shared/seeds); field
names like `loanAmt` appear only in this package.
"""

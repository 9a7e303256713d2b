"""Pure rules of the savings engine: money, the ledger, matching and interest.

Nothing here touches a database, a clock or the network; it imports the standard library only
(a test enforces it), so every rule can be tested as plain functions on plain values.
"""

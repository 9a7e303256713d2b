"""Use cases: one function each, every one inside a unit of work that commits or rolls back whole.

The CLI, the HTTP façades and the scheduler all call these; none of them writes rows itself.
"""

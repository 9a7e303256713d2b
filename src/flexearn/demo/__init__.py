"""`flexearn demo`: a seeded sandbox world, served over HTTP with a fast simulated clock."""

"""Everything that touches the outside world: the database, the clock, demand sources."""

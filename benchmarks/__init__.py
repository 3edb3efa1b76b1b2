"""`make bench`: figures printed, nothing asserted (see README "Benchmarks")."""

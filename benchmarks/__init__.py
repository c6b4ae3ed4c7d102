"""Benchmarks: each compares against its peers in the same run (medians and ratios)."""

"""Decisions and their statistics: subsets, the confirmation design, finalists and the recommendation.

Between the sweep (which runs steps) and the report (which only presents): pure functions over
scored results, so the coverage study (``benchmarks/coverage.py``) runs the very same code.
"""

"""Scoring methods on the synthesised test encodes: `evaluate` (one row of Table 1), `report` (tables
from the rows), `bdrate` and the non-learned `baselines` (input, Lanczos, deblocking)."""

"""Training: one plain iteration-based loop (`loop.fit`) shared by every phase, plus one module per phase."""

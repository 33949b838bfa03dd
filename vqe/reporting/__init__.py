"""What a reader looks at: the paper's `figures` and the generated `results_page` (results/README.md)."""

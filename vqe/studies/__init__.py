"""The paper's studies beyond Table 1, each built from training and evaluation: `ablation`, `scaling`,
`codecs` (other encoders), `resilience` (other training bitrates) and `transfer` (generalisation)."""

"""Training: one trainer (`core`: the session, the loop, checkpoints, DDP, optimisers, validation) and one module
per phase, each supplying its model, its step and its losses: `stage_a`, `stage_b` (with `gan`, every
adversarial game, and `generator`), `nogan`, `baseline` (every Table 1 baseline)."""

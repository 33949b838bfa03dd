"""The one trainer every phase runs on: the session (processes, data, fingerprint, validator, export), the
plain iteration loop with resume and DVC logging, checkpoints, DDP, precision, optimisers, schedules and the EMA,
and validation. A phase (`vqe/train/<phase>.py`) supplies only its model, its step and its losses."""

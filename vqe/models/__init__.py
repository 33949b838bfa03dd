"""Models: one file per architecture (`vqe.registry.ARCHS` names them); `vqe.models.build` builds, saves
and loads them by name. This file imports nothing, so importing one architecture imports no other."""

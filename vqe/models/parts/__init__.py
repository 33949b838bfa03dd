"""Building blocks that several architectures share (alignment, deformable convolution, residual and
dense blocks, attention, optical flow, discriminators, the trainer contract). Not architectures themselves:
`vqe.registry.ARCHS` names those, one file each in `vqe/models/`."""

"""Layer 0: what every other layer may use: the error type, atomic writes, repository paths, checked
downloads from the package registries, the offline ImageNet weights and the bicubic up-sampler."""

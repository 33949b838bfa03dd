"""Data: ground-truth sources, degradation (down-scale, encode, decode, up-scale), storage, datasets."""

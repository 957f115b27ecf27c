"""Compression before quantization: fuse, prune, cluster, low-rank, fine-tune, LUT; the recipe and its driver."""

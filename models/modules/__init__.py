"""Layers shared by the models: rotary positions, attention kernels."""

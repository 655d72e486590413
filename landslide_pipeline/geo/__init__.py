"""Rasters and vectors, given paths and options: the scene reader, mosaics, tiling, labels, terrain."""

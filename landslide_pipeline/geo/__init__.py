"""Rasters and vectors: surveys, mosaics, tiling, labels, terrain, change detection."""

"""Pre-cut tile data sets (PNG, JPEG, TIFF, HDF5 image/mask pairs) read through adapter configs."""

"""Print parameter counts of every architecture at width 1 next to the papers' figures.

Usage: ``python bench/params.py`` (no forward pass, CPU only, a few seconds).
The last line is JSON: ``{"unet": 31037698, ...}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Lets the script run from a checkout where the package is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landslide_pipeline.nn import available_architectures, count_parameters, create_model  # noqa: E402

IN_CHANNELS = 3
NUM_CLASSES = 2
#: Parameter counts reported in the literature, in millions.
REFERENCES = {
    "unet": "34.5 M (study B); 31.0 M classic padded U-Net with BN",
    "resunet": "-",
    "fcn": "- (VGG-16 FCN-8s: 134 M with 7x7x4096 fc6)",
    "linknet": "13.4 M (study B); 11.5 M (Chaurasia & Culurciello 2017)",
}


def unet_with_3x3_upconvs() -> int:
    """U-Net count if each 2x2 up-conv were a 3x3 conv after upsampling (Keras-style).

    Returns:
        The parameter count of that variant.
    """
    unet = create_model("unet", IN_CHANNELS, NUM_CLASSES, width=1.0)
    extra = sum((9 - 4) * up.in_channels * up.out_channels for up in unet.upsample)
    return count_parameters(unet) + extra


def main() -> None:
    """Print the table and the JSON line."""
    counts = {
        name: count_parameters(create_model(name, IN_CHANNELS, NUM_CLASSES, width=1.0))
        for name in available_architectures()
    }
    print(f"Parameters at width 1, {IN_CHANNELS} bands, {NUM_CLASSES} classes")
    print(f"{'architecture':<12} {'count':>12} {'millions':>9}  reference")
    for name, count in counts.items():
        print(f"{name:<12} {count:>12,} {count / 1e6:>8.2f}M  {REFERENCES[name]}")
    print(f"unet with 3x3 instead of 2x2 up-convs: {unet_with_3x3_upconvs():,} (study B's 34.5 M)")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()

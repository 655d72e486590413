"""Object-oriented landslide labels (study A): multi-scale segmentation, object features and a
hierarchy of threshold rules, written in the manual labels' layout.

Modules, in pipeline order: ``scene`` (reading windows), ``regions`` and ``merging`` (region
statistics and eCognition-style multiresolution merging), ``segmentation`` (the scene, window by
window, at every scale), ``texture`` and ``features`` (object features), ``rules`` (the rule
file and the classification), ``obia`` (the three steps on a scene), ``tiles`` (tile masks and
the survey-level entry point) and ``agreement`` (label sources scored against each other).
"""

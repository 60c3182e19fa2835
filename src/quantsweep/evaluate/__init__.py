"""Accuracy: decoding detector outputs, COCO mAP on a fixed subset, the paired bootstrap."""

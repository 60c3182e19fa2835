"""The data: COCO datasets and subsets, the one letterbox preprocessing, calibration sets from any image folder."""

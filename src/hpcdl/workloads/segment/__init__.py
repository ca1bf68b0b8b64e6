"""The semantic-segmentation workload: a 2-D UNet (:mod:`.model`) trained on per-split image and
mask arrays (:mod:`.arrays`) that ``hpcdl cells`` (synthetic microscopy) or ``hpcdl masks`` (a
folder of PNG/TIFF pairs) writes, with IoU as its target."""

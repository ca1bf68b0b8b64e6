"""The image-classification workload: a configurable CNN (:mod:`.model`), on-device augmentation
and MixUp (:mod:`.augment`), trained on the arrays ``hpcdl arrays`` writes (Fashion-MNIST, MNIST,
CIFAR-10, Kaggle CSV)."""

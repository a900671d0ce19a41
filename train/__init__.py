"""Training for the white-box cartoonizer: ``python -m train {pretrain,adversarial,export,push,evaluate,extract-vgg}``.

Produces the generator checkpoints that :mod:`cartoon.checkpoint` loads. Modules: ``options`` (the one parser),
``data`` (image folders, seeded patches), ``gather`` (training data from Debian packages), ``losses``,
``perceptual`` (VGG features), ``superpixels`` (structure targets in worker processes), ``trainer`` (the steps
and the loop), ``checkpoints`` (atomic run checkpoints, resume, the run -> generator resolver), ``logs``
(metrics, TensorBoard, sample grids), ``export`` (model card, Hub push), ``evaluate`` (the quality report),
``extract_vgg``.
"""

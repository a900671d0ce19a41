"""Training for the white-box cartoonizer (issue 4): not built yet.

The package will hold the options, data folders, losses and trainer that produce checkpoints for
:mod:`cartoon.checkpoint`. Nothing here is importable as a trainer today.
"""

"""The control layer: the journal, scripted replies, the verdict and the admin surface."""

"""The GAN side of ADAPT: the method table, the balance controller, losses, DiffAugment, the
train-state pytrees and the pure, jitted D and G steps."""

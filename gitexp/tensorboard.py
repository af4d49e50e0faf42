"""`from gitexp.tensorboard import SummaryWriter`: a TensorBoard script recorded as a run by
changing its import line (gitexp/integrations/tensorboard.py)."""

from gitexp.integrations.tensorboard import SummaryWriter

__all__ = ["SummaryWriter"]

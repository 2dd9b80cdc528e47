"""PyTorch model definitions (FR, NR, QP map), one declarative spec per kind, checkpoint loading."""

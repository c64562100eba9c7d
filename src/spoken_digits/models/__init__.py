"""Models: the registered networks and the checkpoint format that carries them."""

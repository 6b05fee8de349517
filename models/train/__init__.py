"""Training recipes: the codec trainer, its losses and discriminator, shared utilities."""

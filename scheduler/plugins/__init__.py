"""The built-in plugins, one per module; ``scheduler.registry`` names them."""

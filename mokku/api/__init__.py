"""The API layer: one module per endpoint family, the one reply decision, and what replies are made of."""

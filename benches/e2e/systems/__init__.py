"""One adapter per system under test; each is imported both by the driver (`leg.py`) and by its worker."""

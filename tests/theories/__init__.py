"""Theory unit tests: each theory against closed forms, exact recursions, limits and properties."""

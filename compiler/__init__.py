"""bebert."""

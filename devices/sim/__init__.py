"""The simulated device: physics, step laws, presets and the simulated array."""

"""The hardware path: bench, instrument crossbar, wiring, limits, journal, resume check, emulator."""

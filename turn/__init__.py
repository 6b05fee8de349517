"""TURN relay: coturn configuration, launcher and time-limited credentials."""

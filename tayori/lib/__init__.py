"""Small helpers shared by every app: configuration, client addresses, masking."""

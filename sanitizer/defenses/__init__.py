"""Defense methods. AdvrBD is the default pipeline; its steps live in `advrbd`."""

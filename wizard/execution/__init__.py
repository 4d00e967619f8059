"""Running steps: the detached wrapper and its log, launching and inspecting, the driver and its events."""

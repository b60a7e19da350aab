"""The simulation layer: faults, latency and real limits, decided once per request."""

"""Stand-ins for hardware, so tests exercise real protocols: an OpenSSH server on loopback, ..."""

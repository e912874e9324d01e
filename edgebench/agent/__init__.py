"""The on-device loop: the same code on the host (local device) and on an SSH board.

It imports only the standard library, numpy, a TFLite runtime and, where installed, the
official MLPerf LoadGen, and keeps to Python 3.8 syntax, because board images lag behind.
Nothing here may import from the rest of edgebench: the package is copied alone to devices.
"""

AGENT_VERSION = "0.1.0"

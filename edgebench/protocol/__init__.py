"""The host side of MLPerf Tiny's serial command set (and the model ids and input formats
both sides agree on), shared by the serial transport and the virtual MCU."""

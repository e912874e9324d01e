/* What a board implements for the bridge: a UART, a microsecond timer and the timestamp pin.
 * Everything else (commands, buffers, timing loop, results) is in the portable core. */
#ifndef EB_PORT_H
#define EB_PORT_H

#include <stddef.h>
#include <stdint.h>

/* Send bytes on the UART the host listens to; may block until they are queued. */
void eb_port_write(const char *data, size_t length);

/* Microseconds since boot, free-running; wraps at 2^32 like MLPerf Tiny's m-lap-us-. */
uint32_t eb_port_micros(void);

/* Drive the timestamp GPIO (1 = idle high, 0 = pulled low). MLPerf Tiny energy monitors
 * record the falling edge; the core holds the pin low for EB_TIMESTAMP_HOLD_US. */
void eb_port_timestamp_pin(int level);

/* Vendor / board name reported by name% (m-name-dut-[...]). */
const char *eb_port_vendor(void);

#endif

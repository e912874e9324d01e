/* The device half of MLPerf Tiny's serial command set, plus edgebench's announced extensions.
 * The port feeds received bytes to eb_bridge_receive() and, when it returns 1, calls
 * eb_bridge_execute() outside interrupt context; replies go out through eb_port_write(). */
#ifndef EB_BRIDGE_H
#define EB_BRIDGE_H

#include <stdint.h>

/* Longest command accepted (db64 chunks), the '%' not counted. Longer ones are refused. */
#ifndef EB_CMD_MAX
#define EB_CMD_MAX 512
#endif

/* How long the timestamp pin is held low in energy timing: energy monitors filter pulses
 * shorter than about 50 us as glitches. */
#ifndef EB_TIMESTAMP_HOLD_US
#define EB_TIMESTAMP_HOLD_US 100
#endif

/* Largest N (and W) infer accepts; a build for fuzzing lowers it so no input runs long. */
#ifndef EB_INFER_MAX
#define EB_INFER_MAX 999999999L
#endif

/* Reported by the eb-info extension; set with -DEB_BUILD_ID=\"...\" when building. */
#ifndef EB_BUILD_ID
#define EB_BUILD_ID "unknown"
#endif

typedef enum { EB_TIMING_PERFORMANCE = 0, EB_TIMING_ENERGY } eb_timing_t;

/* Prints the boot banner (timestamp mode, m-init-done, m-ready). */
void eb_bridge_init(eb_timing_t timing);

/* Returns 1 when a complete command ('%' seen) waits for eb_bridge_execute(). */
int eb_bridge_receive(uint8_t byte);

/* Parses and runs the pending command; every command ends with m-ready. */
void eb_bridge_execute(void);

#endif

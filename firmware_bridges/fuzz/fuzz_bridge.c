/* libFuzzer harness over the command parser: any byte stream, split into commands however
 * it comes, must be answered without a crash, an overrun (ASan) or undefined behaviour
 * (UBSan), and the bridge must still answer a final name% with m-ready.
 *
 * Build it with clang's -fsanitize=fuzzer,address,undefined and -DEB_INFER_MAX=100, linking
 * the core sources and a converted model; run it with -runs=N on an empty directory followed
 * by fuzz/corpus (the seeds). tests/test_firmware_fuzz.py does both. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_bridge.h"
#include "eb_port.h"

static uint32_t fuzz_clock;
static char fuzz_tail[16];
static size_t fuzz_tail_length;

void eb_port_write(const char *data, size_t length)
{
    /* keep the last bytes written, to check the final m-ready */
    size_t i;
    for (i = 0; i < length; ++i) {
        if (fuzz_tail_length == sizeof fuzz_tail) {
            memmove(fuzz_tail, fuzz_tail + 1, sizeof fuzz_tail - 1);
            --fuzz_tail_length;
        }
        fuzz_tail[fuzz_tail_length++] = data[i];
    }
}

uint32_t eb_port_micros(void)
{
    return fuzz_clock += 7;
}

void eb_port_timestamp_pin(int level)
{
    (void)level;
}

const char *eb_port_vendor(void)
{
    return "fuzz";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char probe[] = "name%";
    static int booted;
    size_t i;
    if (!booted) {
        eb_bridge_init(EB_TIMING_PERFORMANCE);
        booted = 1;
    }
    for (i = 0; i < size; ++i) {
        if (eb_bridge_receive(data[i])) {
            eb_bridge_execute();
        }
    }
    /* whatever came before, a complete command must still be answered */
    for (i = 0; i < sizeof probe - 1; ++i) {
        if (eb_bridge_receive((uint8_t)probe[i])) {
            fuzz_tail_length = 0;
            eb_bridge_execute();
        }
    }
    if (fuzz_tail_length < 9 || memcmp(fuzz_tail + fuzz_tail_length - 9, "m-ready\r\n", 9) != 0) {
        abort();
    }
    return 0;
}

/* POSIX port: the bridge on a pseudo-terminal, so the host's serial transport talks to the C
 * firmware exactly as to a board. Prints "port <slave path>" on stdout once the pty exists,
 * prints the boot banner each time the host opens the port (like a board that resets when
 * its USB serial port opens), and serves commands until stopped.
 *
 *   eb-posix-bridge [--timing performance|energy] [--activity FILE] [--vendor NAME]
 *
 * --activity appends the timestamp pin's edges as JSON lines ({"t_ns": .., "pin": 0|1},
 * CLOCK_MONOTONIC), the virtual bench's format, so meter emulators can record them. */
#define _XOPEN_SOURCE 600
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "eb_bridge.h"
#include "eb_port.h"

/* From the host opening the port to the boot banner (the virtual MCU waits as long). */
#define EB_POSIX_BOOT_US 200000

static int eb_master = -1;
static FILE *eb_activity;
static long long eb_boot_ns;
static const char *eb_vendor_name = "edgebench posix bridge";

static long long eb_monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

const char *eb_port_vendor(void)
{
    return eb_vendor_name;
}

void eb_port_write(const char *data, size_t length)
{
    while (length > 0) {
        const ssize_t written = write(eb_master, data, length);
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                struct pollfd wait = {eb_master, POLLOUT, 0};
                poll(&wait, 1, 100);
                continue;
            }
            return; /* the host closed the port: the output is lost, as on a real UART */
        }
        data += written;
        length -= (size_t)written;
    }
}

uint32_t eb_port_micros(void)
{
    return (uint32_t)((eb_monotonic_ns() - eb_boot_ns) / 1000);
}

void eb_port_timestamp_pin(int level)
{
    if (eb_activity) {
        fprintf(eb_activity, "{\"t_ns\": %lld, \"pin\": %d}\n", eb_monotonic_ns(), level ? 1 : 0);
        fflush(eb_activity);
    }
}

static void eb_open_pty(void)
{
    struct termios raw;
    int slave;
    eb_master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (eb_master < 0 || grantpt(eb_master) != 0 || unlockpt(eb_master) != 0) {
        perror("eb-posix-bridge: cannot open a pseudo-terminal");
        exit(1);
    }
    /* Open and close the slave once: from then on the master reads EIO exactly while no
     * host has the port open, which is how a (re)connection is noticed. */
    slave = open(ptsname(eb_master), O_RDWR | O_NOCTTY);
    if (slave >= 0) {
        if (tcgetattr(slave, &raw) == 0) {
            cfmakeraw(&raw);
            tcsetattr(slave, TCSANOW, &raw);
        }
        close(slave);
    }
}

static int eb_options(int argc, char **argv, eb_timing_t *timing)
{
    int i;
    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--timing") == 0) {
            *timing = strcmp(argv[i + 1], "energy") == 0 ? EB_TIMING_ENERGY
                                                         : EB_TIMING_PERFORMANCE;
        } else if (strcmp(argv[i], "--activity") == 0) {
            eb_activity = fopen(argv[i + 1], "a");
            if (!eb_activity) {
                perror(argv[i + 1]);
                return 1;
            }
        } else if (strcmp(argv[i], "--vendor") == 0) {
            eb_vendor_name = argv[i + 1];
        } else {
            fprintf(stderr, "eb-posix-bridge: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (i < argc) {
        fprintf(stderr, "eb-posix-bridge: option %s needs a value\n", argv[i]);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    eb_timing_t timing = EB_TIMING_PERFORMANCE;
    int connected = 0;
    const int status = eb_options(argc, argv, &timing);
    if (status) {
        return status;
    }
    eb_boot_ns = eb_monotonic_ns();
    eb_open_pty();
    printf("port %s\n", ptsname(eb_master));
    fflush(stdout);
    for (;;) {
        char chunk[256];
        struct pollfd wait = {eb_master, POLLIN, 0};
        ssize_t count;
        ssize_t k;
        if (connected) {
            poll(&wait, 1, 1000);
        }
        count = read(eb_master, chunk, sizeof chunk);
        if (count < 0 && errno == EIO) {
            /* nobody has the port open: wait for the host */
            connected = 0;
            usleep(2000);
            continue;
        }
        if (!connected) {
            connected = 1;
            /* A host's open() ends by flushing its input: boot after it, as a board that
             * resets on open does (boot time also hides what the reset would garble). */
            usleep(EB_POSIX_BOOT_US);
            eb_bridge_init(timing);
        }
        for (k = 0; k < count; ++k) {
            if (eb_bridge_receive((uint8_t)chunk[k])) {
                eb_bridge_execute();
            }
        }
    }
}

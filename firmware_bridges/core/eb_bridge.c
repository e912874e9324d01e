/* Command parsing and dispatch. Replies follow MLPerf Tiny's reference firmware line for line
 * (so its runners and edgebench's host read them alike); what the reference leaves undefined
 * (over-long commands, bad hex, loads that do not fit) is refused with an e-[...] line instead
 * of corrupting the buffer. */
#include "eb_bridge.h"

#include <string.h>

#include "eb_backend.h"
#include "eb_port.h"
#include "eb_print.h"

#define EB_MAX_RESULTS 16
#define EB_MAX_TOKENS 4
#define EB_NUMBER_LIMIT 1000000000UL

static char eb_command[EB_CMD_MAX + 1];
static size_t eb_command_length;
static int eb_command_overflow;
static int eb_command_pending;
static eb_timing_t eb_timing;

/* db load state: how many bytes the host announced and how many arrived. */
static size_t eb_expected;
static size_t eb_received;
static int eb_loading;

static void eb_line(const char *text)
{
    eb_print(text);
    eb_print("\r\n");
}

static void eb_error(const char *what, const char *detail)
{
    eb_print("e-[");
    eb_print(what);
    eb_print(detail);
    eb_line("]");
}

static void eb_print_timing(void)
{
    eb_line(eb_timing == EB_TIMING_ENERGY ? "m-timestamp-mode-energy"
                                          : "m-timestamp-mode-performance");
}

void eb_bridge_init(eb_timing_t timing)
{
    eb_timing = timing;
    eb_port_timestamp_pin(1);
    eb_print_timing();
    eb_line("m-init-done");
    eb_line("m-ready");
}

int eb_bridge_receive(uint8_t byte)
{
    if (eb_command_pending) {
        return 1; /* the host sends nothing before m-ready; drop what it sends anyway */
    }
    if (byte == '%') {
        eb_command[eb_command_length] = '\0';
        eb_command_pending = 1;
        return 1;
    }
    if (byte == '\r' || byte == '\n') {
        return 0; /* a stray line ending would otherwise start the next command */
    }
    if (eb_command_length < EB_CMD_MAX) {
        eb_command[eb_command_length++] = (char)byte;
    } else {
        eb_command_overflow = 1;
    }
    return 0;
}

/* Splits in place on spaces; returns the token count (at most EB_MAX_TOKENS, rest ignored). */
static int eb_tokens(char *text, char *tokens[EB_MAX_TOKENS])
{
    int count = 0;
    while (*text && count < EB_MAX_TOKENS) {
        while (*text == ' ') {
            *text++ = '\0';
        }
        if (!*text) {
            break;
        }
        tokens[count++] = text;
        while (*text && *text != ' ') {
            ++text;
        }
    }
    return count;
}

/* Decimal below EB_NUMBER_LIMIT; -1 for anything else. */
static long eb_number(const char *text)
{
    unsigned long value = 0;
    if (!text || !*text) {
        return -1;
    }
    for (; *text; ++text) {
        if (*text < '0' || *text > '9') {
            return -1;
        }
        value = value * 10 + (unsigned long)(*text - '0');
        if (value >= EB_NUMBER_LIMIT) {
            return -1;
        }
    }
    return (long)value;
}

static void eb_timestamp(void)
{
    if (eb_timing == EB_TIMING_ENERGY) {
        uint32_t start;
        eb_port_timestamp_pin(0);
        start = eb_port_micros();
        /* "<=": a tick read just before it advances must not shorten the pulse */
        while ((uint32_t)(eb_port_micros() - start) <= EB_TIMESTAMP_HOLD_US) {
        }
        eb_port_timestamp_pin(1);
        return;
    }
    eb_print("m-lap-us-");
    eb_print_u32(eb_port_micros());
    eb_print("\r\n");
}

static void eb_results(void)
{
    double values[EB_MAX_RESULTS];
    const size_t count = eb_backend_results(values, EB_MAX_RESULTS);
    size_t i;
    eb_print("m-results-[");
    for (i = 0; i < count; ++i) {
        if (i) {
            eb_print(",");
        }
        eb_print_float(values[i], eb_backend_result_decimals());
    }
    eb_line("]");
}

static void eb_append(const uint8_t *bytes, size_t count)
{
    size_t room = eb_expected - eb_received;
    if (!eb_loading) {
        return;
    }
    if (count > room) {
        count = room; /* like the reference: bytes past the announced count are ignored */
    }
    memcpy(eb_backend_wire_buffer() + eb_received, bytes, count);
    eb_received += count;
    if (eb_received == eb_expected) {
        eb_loading = 0;
        eb_line("m-load-done");
    }
}

static int eb_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void eb_db_hex(const char *text)
{
    uint8_t bytes[EB_CMD_MAX / 2];
    size_t count = 0;
    if (!eb_loading) {
        eb_error("db: no db load in progress", "");
        return;
    }
    for (; text[0]; text += 2) {
        const int high = eb_hex_digit(text[0]);
        const int low = text[1] ? eb_hex_digit(text[1]) : -1;
        if (high < 0 || low < 0) {
            eb_error("db: invalid hex near ", text);
            return;
        }
        bytes[count++] = (uint8_t)(high * 16 + low);
    }
    eb_append(bytes, count);
}

static int eb_base64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* edgebench extension: base64 chunks carry 3 bytes per 4 characters instead of 1 per 2. */
static void eb_db64(const char *text)
{
    uint8_t bytes[EB_CMD_MAX];
    size_t count = 0;
    size_t length = text ? strlen(text) : 0;
    size_t i;
    if (!eb_loading) {
        eb_error("db64: no db load in progress", "");
        return;
    }
    if (length == 0 || length % 4) {
        eb_error("db64: base64 length must be a non-zero multiple of 4", "");
        return;
    }
    for (i = 0; i < length; i += 4) {
        const int pad = (text[i + 3] == '=') + (text[i + 2] == '=');
        const int a = eb_base64_value(text[i]);
        const int b = eb_base64_value(text[i + 1]);
        const int c = pad >= 2 ? 0 : eb_base64_value(text[i + 2]);
        const int d = pad >= 1 ? 0 : eb_base64_value(text[i + 3]);
        uint32_t group;
        if (a < 0 || b < 0 || c < 0 || d < 0 || (pad && i + 4 != length) ||
            (pad == 1 && text[i + 2] == '=')) {
            eb_error("db64: invalid base64 near ", text + i);
            return;
        }
        group = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
        bytes[count++] = (uint8_t)(group >> 16);
        if (pad < 2) {
            bytes[count++] = (uint8_t)(group >> 8);
        }
        if (pad < 1) {
            bytes[count++] = (uint8_t)group;
        }
    }
    eb_append(bytes, count);
}

static void eb_db_print(char *tokens[], int count)
{
    const long length = count > 2 ? eb_number(tokens[2]) : (long)eb_expected;
    const long offset = count > 3 ? eb_number(tokens[3]) : 0;
    long i;
    if (length < 0 || offset < 0 || (size_t)(length + offset) > eb_backend_input_bytes()) {
        eb_error("db print: range outside the buffer", "");
        return;
    }
    for (i = 0; i < length; ++i) {
        if (i % 16 == 0) {
            eb_print(i ? "\r\nm-buffer-" : "m-buffer-");
        } else {
            eb_print("-");
        }
        eb_print_hex_byte(eb_backend_wire_buffer()[offset + i]);
    }
    if (length > 0) {
        eb_print("\r\n");
    }
}

static void eb_db(char *tokens[], int count, char *payload)
{
    if (count >= 3 && strcmp(tokens[1], "load") == 0) {
        const long size = eb_number(tokens[2]);
        if (size <= 0 || (size_t)size > eb_backend_input_bytes()) {
            eb_print("e-[db load: ");
            eb_print(tokens[2]);
            eb_print(" bytes do not fit; this model takes ");
            eb_print_u32((uint32_t)eb_backend_input_bytes());
            eb_line("]");
            return;
        }
        eb_expected = (size_t)size;
        eb_received = 0;
        eb_loading = 1;
        eb_print("m-[Expecting ");
        eb_print(tokens[2]);
        eb_line(" bytes]");
        return;
    }
    if (count >= 2 && strcmp(tokens[1], "print") == 0) {
        eb_db_print(tokens, count);
        return;
    }
    if (count == 2) {
        eb_db_hex(payload);
        return;
    }
    eb_error("db: expected load N, print [N] [offset] or hex bytes", "");
}

static void eb_infer(char *tokens[], int count)
{
    const long iterations = count > 1 ? eb_number(tokens[1]) : 1;
    const long warmups = count > 2 ? eb_number(tokens[2]) : 10;
    long i;
    if (iterations < 1 || warmups < 0 || iterations > EB_INFER_MAX || warmups > EB_INFER_MAX) {
        eb_error("infer: expected infer N [W] with N >= 1 and W >= 0", "");
        return;
    }
    if (eb_loading || eb_received != eb_backend_input_bytes() ||
        eb_backend_load(eb_backend_wire_buffer(), eb_received) != 0) {
        eb_error("infer: load a whole input first (db load ", "then db data)");
        return;
    }
    eb_print("m-warmup-start-");
    eb_print_u32((uint32_t)warmups);
    eb_print("\r\n");
    for (i = 0; i < warmups; ++i) {
        eb_backend_infer();
    }
    eb_line("m-warmup-done");
    eb_print("m-infer-start-");
    eb_print_u32((uint32_t)iterations);
    eb_print("\r\n");
    eb_timestamp();
    for (i = 0; i < iterations; ++i) {
        eb_backend_infer();
    }
    eb_timestamp();
    eb_line("m-infer-done");
    eb_results();
}

static void eb_help(void)
{
    eb_line("name               : the vendor name of this DUT");
    eb_line("profile            : the benchmark profile and model id");
    eb_line("timestamp          : m-lap-us- (performance) or a pin pulse (energy)");
    eb_line("db load N          : expect N input bytes");
    eb_line("db HH...           : input bytes in hex");
    eb_line("db print [N] [off] : hex dump of the input buffer");
    eb_line("infer N [W]        : W warm-ups, then N timed inferences and the results");
    eb_line("results            : the last results again");
    eb_line("db64 BASE64        : input bytes in base64 (edgebench extension)");
    eb_line("eb-info            : model sha256 and build id (edgebench extension)");
    eb_line("mode [MODE]        : show or set performance / energy timing (edgebench extension)");
    eb_print("m-ext-[db64:");
    eb_print_u32(EB_CMD_MAX);
    eb_line("]");
    eb_line("m-ext-[mode]");
    eb_line("m-ext-[eb-info]");
}

static void eb_info(void)
{
    eb_print("m-eb-model-[");
    eb_print(eb_backend_model_id());
    eb_line("]");
    eb_print("m-eb-model-sha256-[");
    eb_print(eb_backend_model_sha256());
    eb_line("]");
    eb_line("m-eb-build-[" EB_BUILD_ID "]");
}

/* edgebench extension `mode [performance|energy]`: show or switch the timestamp mode at run
 * time, instead of MLPerf Tiny's build-time EE_CFG_ENERGY_MODE. */
static void eb_mode(char *tokens[], int count)
{
    if (count == 2 && strcmp(tokens[1], "performance") == 0) {
        eb_timing = EB_TIMING_PERFORMANCE;
    } else if (count == 2 && strcmp(tokens[1], "energy") == 0) {
        eb_timing = EB_TIMING_ENERGY;
    } else if (count != 1) {
        eb_error("Unknown timestamp mode: ", tokens[1]);
        return;
    }
    eb_print_timing();
}

static int eb_printable(const char *text)
{
    for (; *text; ++text) {
        if (*text < ' ' || *text > '~') {
            return 0;
        }
    }
    return 1;
}

static void eb_dispatch(char *text)
{
    char *tokens[EB_MAX_TOKENS];
    char *payload;
    int count;
    if (!eb_printable(text)) {
        eb_error("Malformed command: not printable ASCII", "");
        return;
    }
    count = eb_tokens(text, tokens);
    payload = count > 1 ? tokens[1] : NULL;
    if (count == 0) {
        eb_error("Unknown command: ", "");
    } else if (strcmp(tokens[0], "name") == 0) {
        eb_print("m-name-dut-[");
        eb_print(eb_port_vendor());
        eb_line("]");
    } else if (strcmp(tokens[0], "profile") == 0) {
        eb_line("m-profile-[ULPMark for tinyML Firmware V0.0.1]");
        eb_print("m-model-[");
        eb_print(eb_backend_model_id());
        eb_line("]");
    } else if (strcmp(tokens[0], "timestamp") == 0) {
        eb_timestamp();
    } else if (strcmp(tokens[0], "help") == 0) {
        eb_help();
    } else if (strcmp(tokens[0], "db") == 0) {
        eb_db(tokens, count, payload);
    } else if (strcmp(tokens[0], "db64") == 0 && count == 2) {
        eb_db64(payload);
    } else if (strcmp(tokens[0], "infer") == 0) {
        eb_infer(tokens, count);
    } else if (strcmp(tokens[0], "results") == 0) {
        eb_results();
    } else if (strcmp(tokens[0], "eb-info") == 0) {
        eb_info();
    } else if (strcmp(tokens[0], "mode") == 0) {
        eb_mode(tokens, count);
    } else {
        eb_error("Unknown command: ", tokens[0]);
    }
}

void eb_bridge_execute(void)
{
    if (!eb_command_pending) {
        return;
    }
    if (eb_command_overflow) {
        eb_print("e-[Command longer than ");
        eb_print_u32(EB_CMD_MAX);
        eb_line(" characters refused]");
    } else {
        eb_dispatch(eb_command);
    }
    eb_line("m-ready");
    eb_command_length = 0;
    eb_command_overflow = 0;
    eb_command_pending = 0;
}

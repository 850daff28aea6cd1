/* The framer over buffers: every case feeds bytes the way a socket would
 * (whole, split, pipelined) and checks frames, consumed bytes and counts. */
#include <criterion/criterion.h>
#include <string.h>

#include "hub/limits.h"
#include "hub/mllp.h"

/* Feeds `in` to a reader in chunks of `chunk` bytes through a buffer that
 * follows the consumed contract; collects frames joined by '|' into out and
 * returns the number of HUB_E_LIMIT results. */
static int run(hub_mllp_reader *r, const char *in, size_t n, size_t chunk, char *out,
               size_t cap) {
    hub_buf b;
    hub_buf_init(&b);
    out[0] = '\0';
    int limits = 0;
    size_t fed = 0;
    while (fed < n) {
        size_t k = n - fed < chunk ? n - fed : chunk;
        hub_buf_append(&b, in + fed, k);
        fed += k;
        for (;;) {
            hub_slice f;
            hub_err err;
            hub_status st = hub_mllp_next(r, hub_slice_of(b.p, b.n), &f, &err);
            cr_assert_leq(r->consumed, b.n);
            if (st == HUB_OK) {
                strncat(out, "[", cap - strlen(out) - 1);
                size_t l = strlen(out);
                size_t m = f.n < cap - l - 2 ? f.n : cap - l - 2;
                memcpy(out + l, f.p, m);
                out[l + m] = '\0';
                strncat(out, "]", cap - strlen(out) - 1);
            } else if (st == HUB_E_LIMIT) {
                cr_assert_eq(err.code, HUB_E_LIMIT);
                cr_assert_str_eq(err.where, "mllp");
                limits++;
                strncat(out, "<LIMIT>", cap - strlen(out) - 1);
            }
            hub_buf_consume(&b, r->consumed);
            if (st == HUB_AGAIN) break;
        }
    }
    hub_buf_release(&b);
    return limits;
}

#define F(s) "\x0b" s "\x1c\x0d"

Test(mllp_frame, one_frame_whole) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 0);
    char out[256];
    const char in[] = F("MSH|a\rPID|1\r");
    cr_assert_eq(run(&r, in, sizeof in - 1, 1000, out, sizeof out), 0);
    cr_assert_str_eq(out, "[MSH|a\rPID|1\r]");
    cr_assert_eq(r.frames, 1);
    cr_assert_eq(r.skipped, 0);
    cr_assert(hub_mllp_reader_idle(&r));
}

Test(mllp_frame, split_at_every_byte) {
    const char in[] = F("MSH|one\r") F("MSH|two\r");
    for (size_t chunk = 1; chunk < sizeof in; chunk++) {
        hub_mllp_reader r;
        hub_mllp_reader_init(&r, 0);
        char out[256];
        cr_assert_eq(run(&r, in, sizeof in - 1, chunk, out, sizeof out), 0);
        cr_assert_str_eq(out, "[MSH|one\r][MSH|two\r]", "chunk %zu", chunk);
    }
}

Test(mllp_frame, pipelined_in_one_buffer) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 0);
    char out[256];
    const char in[] = F("A") F("B") F("C");
    run(&r, in, sizeof in - 1, sizeof in, out, sizeof out);
    cr_assert_str_eq(out, "[A][B][C]");
    cr_assert_eq(r.frames, 3);
}

Test(mllp_frame, garbage_between_frames_is_skipped_and_counted) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 0);
    char out[256];
    const char in[] = "xx\r\n" F("A") "garbage" F("B") "\x1c\x0dtail";
    run(&r, in, sizeof in - 1, 3, out, sizeof out);
    cr_assert_str_eq(out, "[A][B]");
    cr_assert_eq(r.skipped, 4 + 7 + 2 + 4);
}

Test(mllp_frame, empty_frame) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 0);
    char out[64];
    const char in[] = "\x0b\x1c\x0d" F("X");
    run(&r, in, sizeof in - 1, 1, out, sizeof out);
    cr_assert_str_eq(out, "[][X]");
}

Test(mllp_frame, eb_without_cr_is_payload) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 0);
    char out[64];
    const char in[] = "\x0b" "a\x1cz\x0b" "b\x1c\x0d";
    run(&r, in, sizeof in - 1, 2, out, sizeof out);
    cr_assert_str_eq(out, "[a\x1cz\x0b" "b]");
}

Test(mllp_frame, again_keeps_partial_and_does_not_rescan) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 0);
    hub_slice f;
    /* garbage then a frame start: garbage and 0x0B are consumed at once */
    cr_assert_eq(hub_mllp_next(&r, HUB_SLICE_LIT("zz\x0b" "MSH"), &f, NULL), HUB_AGAIN);
    cr_assert_eq(r.consumed, 3);
    cr_assert_eq(r.scan, 3); /* "MSH" was scanned */
    cr_assert_eq(hub_mllp_next(&r, HUB_SLICE_LIT("MSH|x\x1c"), &f, NULL), HUB_AGAIN);
    cr_assert_eq(r.consumed, 0);
    cr_assert_eq(r.scan, 5); /* waits on the 0x1C for its CR */
    cr_assert_eq(hub_mllp_next(&r, HUB_SLICE_LIT("MSH|x\x1c\x0dnext"), &f, NULL), HUB_OK);
    cr_assert_eq(f.n, 5);
    cr_assert(memcmp(f.p, "MSH|x", 5) == 0);
    cr_assert_eq(r.consumed, 7);
}

Test(mllp_frame, oversize_complete_in_buffer) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 4);
    char out[128];
    const char in[] = F("1234") F("12345") F("ok");
    cr_assert_eq(run(&r, in, sizeof in - 1, sizeof in, out, sizeof out), 1);
    cr_assert_str_eq(out, "[1234]<LIMIT>[ok]");
    cr_assert_eq(r.oversize_total, 5);
}

Test(mllp_frame, oversize_streaming_then_discarded) {
    for (size_t chunk = 1; chunk < 12; chunk++) {
        hub_mllp_reader r;
        hub_mllp_reader_init(&r, 4);
        char out[128];
        const char in[] = F("123456789\x1cx") "junk" F("ok");
        cr_assert_eq(run(&r, in, sizeof in - 1, chunk, out, sizeof out), 1, "chunk %zu", chunk);
        cr_assert_str_eq(out, "<LIMIT>[ok]", "chunk %zu", chunk);
        cr_assert_eq(r.skipped, 4, "chunk %zu", chunk);
    }
}

Test(mllp_frame, oversize_prefix_is_capped) {
    size_t big = HUB_MLLP_OVERSIZE_PREFIX * 2;
    char *in = malloc(big + 3);
    in[0] = 0x0b;
    memset(in + 1, 'x', big);
    memcpy(in + 1, "MSH|", 4);
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 1024);
    hub_slice f;
    hub_err err;
    cr_assert_eq(hub_mllp_next(&r, hub_slice_of(in, big + 1), &f, &err), HUB_E_LIMIT);
    cr_assert_eq(f.n, HUB_MLLP_OVERSIZE_PREFIX);
    cr_assert(memcmp(f.p, "MSH|", 4) == 0);
    cr_assert_str_eq(err.msg, "frame over 1024 bytes");
    cr_assert_eq(r.consumed, big + 1);
    in[0] = 0x1c;
    in[1] = 0x0d;
    cr_assert_eq(hub_mllp_next(&r, hub_slice_of(in, 2), &f, &err), HUB_AGAIN);
    cr_assert(hub_mllp_reader_idle(&r));
    cr_assert_eq(r.oversize_total, big);
    free(in);
}

Test(mllp_frame, exactly_max_is_accepted) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 3);
    char out[64];
    const char in[] = F("abc");
    for (size_t chunk = 1; chunk <= sizeof in; chunk++) {
        hub_mllp_reader_init(&r, 3);
        cr_assert_eq(run(&r, in, sizeof in - 1, chunk, out, sizeof out), 0);
        cr_assert_str_eq(out, "[abc]");
    }
}

Test(mllp_frame, default_limit_is_hub_max_frame) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 0);
    size_t n = HUB_MAX_FRAME + 2;
    char *in = malloc(n);
    in[0] = 0x0b;
    memset(in + 1, 'a', n - 1);
    hub_slice f;
    cr_assert_eq(hub_mllp_next(&r, hub_slice_of(in, HUB_MAX_FRAME + 1), &f, NULL), HUB_AGAIN);
    cr_assert_eq(hub_mllp_next(&r, hub_slice_of(in + 1, HUB_MAX_FRAME + 1), &f, NULL),
                 HUB_E_LIMIT);
    free(in);
}

Test(mllp_frame, contract_violation_is_an_error_not_a_crash) {
    hub_mllp_reader r;
    hub_mllp_reader_init(&r, 0);
    hub_slice f;
    hub_err err;
    cr_assert_eq(hub_mllp_next(&r, HUB_SLICE_LIT("\x0b" "abcdef"), &f, &err), HUB_AGAIN);
    cr_assert_eq(hub_mllp_next(&r, HUB_SLICE_LIT("ab"), &f, &err), HUB_E_ARG);
    cr_assert_str_eq(err.msg, "input shorter than the saved offset");
}

Test(mllp_frame, frame_append) {
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_mllp_frame_append(&b, "AB", 2), HUB_OK);
    cr_assert_eq(b.n, 5);
    cr_assert(memcmp(b.p, "\x0b" "AB\x1c\x0d", 5) == 0);
    hub_buf_release(&b);
}

Test(mllp_frame, field_helper) {
    hub_slice m = HUB_SLICE_LIT("MSH|^~\\&|APP|FAC|||202601||ACK|C1|P|2.5\r"
                                "MSA|AE|ID42|bad\r");
    hub_slice f;
    cr_assert(hub_mllp_field(m, "MSH", 1, &f));
    cr_assert(hub_slice_eq_cstr(f, "|"));
    cr_assert(hub_mllp_field(m, "MSH", 2, &f));
    cr_assert(hub_slice_eq_cstr(f, "^~\\&"));
    cr_assert(hub_mllp_field(m, "MSH", 3, &f));
    cr_assert(hub_slice_eq_cstr(f, "APP"));
    cr_assert(hub_mllp_field(m, "MSH", 10, &f));
    cr_assert(hub_slice_eq_cstr(f, "C1"));
    cr_assert(hub_mllp_field(m, "MSA", 1, &f));
    cr_assert(hub_slice_eq_cstr(f, "AE"));
    cr_assert(hub_mllp_field(m, "MSA", 3, &f));
    cr_assert(hub_slice_eq_cstr(f, "bad"));
    cr_assert_not(hub_mllp_field(m, "MSA", 4, &f));
    cr_assert_not(hub_mllp_field(m, "ERR", 1, &f));
    cr_assert_not(hub_mllp_field(m, "MSA", 0, &f));
    /* LF-separated segments and another field separator */
    hub_slice m2 = HUB_SLICE_LIT("MSH#^~\\&#A\nMSA#CA#X\n");
    cr_assert(hub_mllp_field(m2, "MSA", 1, &f));
    cr_assert(hub_slice_eq_cstr(f, "CA"));
}

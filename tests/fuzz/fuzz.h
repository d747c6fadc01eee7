/* What the fuzz targets share (tests/fuzz/fuzz_common.c). Each target is one file that defines
 * LLVMFuzzerInitialize and LLVMFuzzerTestOneInput. It is linked twice: with libFuzzer
 * (-Dfuzz=enabled, clang), and with driver.c, which replays files and directories of inputs
 * in any build, so the seeds and the committed regression inputs are tested by gcc and ASan
 * builds too.
 *
 * A target checks properties of what the library returns, not only that it returned: when one
 * does not hold, FUZZ_REQUIRE prints it and abort()s, which libFuzzer reports as a crash and
 * saves the input for. The library readers take paths, so inputs go through files in a private
 * directory (on /dev/shm when it exists: tmpfs, no disk writes), removed at exit. */
#ifndef BP_FUZZ_H
#define BP_FUZZ_H

#include "backprop.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_REQUIRE(cond, fmt, ...): a property; prints file:line, the condition and the
 * explanation, then abort()s. */
#define FUZZ_REQUIRE(cond, ...)                                                                 \
    do {                                                                                        \
        if (!(cond))                                                                            \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                  \
    } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* name inside the private directory (created on first use), into buf. */
void fuzz_path(char *buf, size_t len, const char *name);
/* Writes (or replaces) a file; the harness aborts if it cannot, as nothing would be tested. */
void fuzz_write(const char *path, const void *data, size_t n);
/* The whole file (malloc'd, *n bytes), or NULL if it cannot be read. */
uint8_t *fuzz_read(const char *path, size_t *n);

/* A bp_error filled with non-NUL bytes, so that a function that fails without writing a
 * terminated message is caught. */
void fuzz_err_reset(bp_error *err);
/* The contract of every failing library call: a negative status the API defines, and a
 * non-empty one-line message; if prefix is not NULL the message starts with it (the file the
 * call read), except for BP_ERR_NOMEM, whose messages need not name one. */
void fuzz_check_failure(const char *what, int st, const bp_error *err, const char *prefix);

/* A gzip member of data (deflate at level 0..9) into a malloc'd buffer; *out_len bytes. name,
 * if not NULL, goes into the gzip header's FNAME field, which a reader must skip. */
uint8_t *fuzz_gzip(const uint8_t *data, size_t n, int level, const char *name, size_t *out_len);
/* Inflates one or more gzip members that fill in[0..n) exactly, as gzip(1) does. Returns the
 * malloc'd data (*out_len bytes) or NULL if in is not such a stream or inflates to more than
 * max bytes (*too_big is then set). */
uint8_t *fuzz_gunzip(const uint8_t *in, size_t n, size_t max, size_t *out_len, int *too_big);

/* FNV-1a: a cheap deterministic choice (a cut position, a level) derived from the input. */
uint64_t fuzz_hash(const uint8_t *data, size_t n);

#endif

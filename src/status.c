/* Status strings, the one-line error messages the library hands back to its caller, and the
 * one clock. */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *bp_status_str(int status)
{
    switch (status) {
    case BP_OK: return "ok";
    case BP_ERR_IO: return "input/output error";
    case BP_ERR_FORMAT: return "invalid file contents";
    case BP_ERR_NOMEM: return "out of memory";
    case BP_ERR_ARG: return "invalid argument";
    case BP_ERR_NUMERIC: return "training diverged";
    case BP_ERR_INTERRUPTED: return "interrupted";
    default: return "unknown status";
    }
}

/* With a field, the message reads "field: what is wrong", so it stands alone for a C caller
 * and the CLI can put its flag's name in the field's place. */
static void vfail(bp_error *err, const char *field, const char *fmt, va_list ap)
{
    if (!err)
        return;
    snprintf(err->field, sizeof err->field, "%s", field);
    int n = *field ? snprintf(err->msg, sizeof err->msg, "%s: ", field) : 0;
    if (n < 0 || (size_t)n >= sizeof err->msg)
        n = 0;
    vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    /* One line, whatever a file name or a quoted piece of a file holds: a newline or an
     * escape sequence from untrusted input never reaches the caller's terminal. */
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

int bp_fail(bp_error *err, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, "", fmt, ap);
    va_end(ap);
    return status;
}

int bp_fail_field(bp_error *err, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, field, fmt, ap);
    va_end(ap);
    return BP_ERR_ARG;
}

double bp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

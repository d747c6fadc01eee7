/* Status strings and the one-line error messages the library hands back to its caller. */
#include "internal.h"

#include <stdio.h>

const char *bp_status_str(int status)
{
    switch (status) {
    case BP_OK: return "ok";
    case BP_ERR_IO: return "input/output error";
    case BP_ERR_FORMAT: return "invalid file contents";
    case BP_ERR_NOMEM: return "out of memory";
    case BP_ERR_ARG: return "invalid argument";
    case BP_ERR_NUMERIC: return "numerical failure (NaN or infinity)";
    default: return "unknown status";
    }
}

int bp_fail(bp_error *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* The results are one report in two files, latest.md and latest.json, and are replaced as a
 * pair: both are written in full to temporaries of their own beside their targets (bp_file:
 * unique names, so two runs into one directory never share a temporary), flushed and fsynced,
 * and only when both are complete are they renamed over the old pair; if either cannot be
 * written, both temporaries are removed and neither file changes. A full disk therefore never
 * leaves half a file, nor a new table beside an old JSON.
 *
 * One window is left: the two renames are two system calls. A crash between them, or a second
 * rename that fails (bp_file_commit renames, then fsyncs the directory), leaves the new
 * latest.md beside the old latest.json; both carry the run's date_utc and commit, so a reader
 * can tell. No POSIX call renames two files at once.
 *
 * The directory is checked before any timing (bench_check_out_dir): a typo in --out-dir should
 * not cost the minutes of a full run. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NREPORTS 2
static const char *const report_names[NREPORTS] = {"latest.md", "latest.json"};

int bench_check_out_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        fprintf(stderr, "bp_bench: --out-dir %s: %s (the directory must exist)\n", dir,
                strerror(errno));
        return BP_ERR_IO;
    }
    if (!S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "bp_bench: --out-dir %s: not a directory\n", dir);
        return BP_ERR_IO;
    }
    /* The way the results will be written, so that this says what the end of the run would. */
    char path[BENCH_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", dir, report_names[0]);
    bp_file *probe = NULL;
    bp_error err;
    if (bp_file_create(&probe, path, &err) != BP_OK) {
        fprintf(stderr, "bp_bench: --out-dir %s: cannot write there: %s\n", dir, err.msg);
        return BP_ERR_IO;
    }
    bp_file_abort(probe);
    return BP_OK;
}

int bench_write_reports(const bench_run *run, const char *dir)
{
    void (*const body[NREPORTS])(FILE *, const bench_run *) = {bench_md_body, bench_json_body};
    char path[NREPORTS][BENCH_PATH_MAX + 16];
    bp_file *f[NREPORTS] = {NULL, NULL};
    bp_error err;
    for (int i = 0; i < NREPORTS; i++) {
        snprintf(path[i], sizeof path[i], "%s/%s", dir, report_names[i]);
        if (bp_file_create(&f[i], path[i], &err) != BP_OK) {
            fprintf(stderr, "bp_bench: %s\n", err.msg);
            goto abort_both;
        }
        FILE *s = bp_file_stream(f[i]);
        errno = 0;
        body[i](s, run);
        /* Flushed and synced here, not first in the commit: a full disk must show before
         * either file is committed. */
        if (fflush(s) != 0 || ferror(s) || fsync(fileno(s)) != 0) {
            fprintf(stderr, "bp_bench: writing %s failed (%s); neither results file was "
                    "changed\n", path[i], errno ? strerror(errno) : "write error");
            goto abort_both;
        }
    }
    int st = bp_file_commit(f[0], &err);
    f[0] = NULL; /* freed by the commit, whatever it returned */
    if (st != BP_OK) {
        fprintf(stderr, "bp_bench: %s; %s was not replaced\n", err.msg, path[1]);
        goto abort_both;
    }
    st = bp_file_commit(f[1], &err);
    if (st != BP_OK) {
        fprintf(stderr, "bp_bench: %s, but %s was already replaced: the two results files are "
                "from different runs now\n", err.msg, path[0]);
        return st;
    }
    return BP_OK;
abort_both:
    for (int i = 0; i < NREPORTS; i++)
        bp_file_abort(f[i]);
    return BP_ERR_IO;
}

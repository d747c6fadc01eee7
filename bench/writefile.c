/* Results files are written whole or not at all: into NAME.tmp, then renamed over NAME. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int bench_write_file(const bench_run *run, const char *dir, const char *name,
                     void (*body)(FILE *f, const bench_run *run))
{
    char path[1200], tmp[1210];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "bp_bench: cannot create %s: %s\n", dir, strerror(errno));
        return BP_ERR_IO;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "bp_bench: cannot write %s: %s\n", tmp, strerror(errno));
        return BP_ERR_IO;
    }
    body(f, run);
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, path)) {
        fprintf(stderr, "bp_bench: writing %s failed: %s\n", path, strerror(errno));
        remove(tmp);
        return BP_ERR_IO;
    }
    return BP_OK;
}

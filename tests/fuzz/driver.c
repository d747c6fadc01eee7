/* main() for a fuzz target outside libFuzzer: runs LLVMFuzzerTestOneInput once on every file
 * named on the command line and on every file in every directory named (in name order, so a
 * failure reproduces). The properties abort on failure; the driver itself fails when no input
 * was run at all, so a seed directory that came out empty cannot pass as tested. */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static long inputs;

static void run_file(const char *path)
{
    size_t n;
    uint8_t *data = fuzz_read(path, &n);
    if (!data) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        exit(1);
    }
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    inputs++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names)))
            abort();
        if (!(names[n++] = strdup(e->d_name)))
            abort();
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char sub[4096];
        struct stat sb;
        snprintf(sub, sizeof sub, "%s/%s", path, names[i]);
        if (stat(sub, &sb) == 0 && S_ISREG(sb.st_mode))
            run_file(sub);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (S_ISDIR(sb.st_mode))
            run_dir(argv[i]);
        else
            run_file(argv[i]);
    }
    printf("replay: %ld inputs, every property held\n", inputs);
    if (inputs == 0) {
        fprintf(stderr, "replay: no input was run\n");
        return 1;
    }
    return 0;
}

/* Files written whole or not at all: a temporary beside the target, flushed and fsynced, then
 * renamed over it, then the directory fsynced so the rename itself survives a crash. Until the
 * rename the old file is untouched, so a full disk or an interrupted run cannot leave half a
 * model where a good one was. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

struct bp_file {
    FILE *f;
    char path[4096];
    char tmp[4096 + 16];
};

int bp_file_create(bp_file **out, const char *path, bp_error *err)
{
    *out = NULL;
    size_t n = strlen(path);
    if (n == 0)
        return bp_fail(err, BP_ERR_ARG, "the output file name is empty");
    if (n >= sizeof((bp_file *)0)->path)
        return bp_fail(err, BP_ERR_ARG, "%.64s…: output path longer than %zu bytes", path,
                       sizeof((bp_file *)0)->path - 1);
    bp_file *f = calloc(1, sizeof *f);
    if (!f)
        return bp_fail(err, BP_ERR_NOMEM, "%s: out of memory", path);
    memcpy(f->path, path, n + 1);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmpXXXXXX", path);
    int fd = mkstemp(f->tmp);
    if (fd < 0) {
        int e = errno;
        free(f);
        return bp_fail(err, BP_ERR_IO, "%s: cannot create a file beside it (%s); the file was "
                       "not changed", path, strerror(e));
    }
    /* mkstemp makes 0600; a model or picture is an ordinary file: 0666 less the umask. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(f->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        unlink(f->tmp);
        free(f);
        return bp_fail(err, BP_ERR_IO, "%s: %s; the file was not changed", path, strerror(e));
    }
    *out = f;
    return BP_OK;
}

FILE *bp_file_stream(bp_file *f) { return f->f; }

void bp_file_abort(bp_file *f)
{
    if (!f)
        return;
    if (f->f)
        fclose(f->f);
    unlink(f->tmp);
    free(f);
}

/* fsync of the directory holding path, so that the rename is on disk too. */
static int sync_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    /* Some file systems refuse fsync on a directory (EINVAL): nothing more can be done there. */
    if (r != 0 && (errno == EINVAL || errno == EROFS))
        r = 0;
    close(fd);
    return r;
}

int bp_file_commit(bp_file *f, bp_error *err)
{
    int e = 0;
    if (fflush(f->f) != 0 || ferror(f->f))
        e = errno ? errno : EIO;
    else if (fsync(fileno(f->f)) != 0)
        e = errno;
    if (fclose(f->f) != 0 && !e)
        e = errno ? errno : EIO;
    f->f = NULL;
    if (!e && rename(f->tmp, f->path) != 0)
        e = errno;
    if (e) {
        int st = bp_fail(err, BP_ERR_IO, "%s: write failed (%s); the file was not changed",
                         f->path, strerror(e));
        bp_file_abort(f);
        return st;
    }
    int st = BP_OK;
    if (sync_dir(f->path) != 0)
        st = bp_fail(err, BP_ERR_IO, "%s: written, but its directory could not be synced: %s",
                     f->path, strerror(errno));
    free(f);
    return st;
}

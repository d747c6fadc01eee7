/* The names of the public enums, in one table each: the CLI's flags, the bench's reports, the
 * model file's metadata and the tests all spell an activation or an optimizer the same way. */
#include "internal.h"

#include <string.h>

typedef struct {
    const char *what;          /* "activation": for the message of a failed parse */
    const char *const *names;  /* names[v] for v = 0 … n−1 */
    int n;
} name_table;

static const char *const act_names[] = {"relu", "tanh", "sigmoid"};
static const char *const impl_names[] = {"blas", "jacobian", "naive"};
static const char *const init_names[] = {"auto", "zeros", "uniform", "normal", "torch"};
static const char *const opt_names[] = {"sgd", "momentum", "nesterov", "adam"};
static const char *const sched_names[] = {"constant", "step", "cosine"};

#define TABLE(what, names) {what, names, (int)(sizeof names / sizeof names[0])}
static const name_table act_table = TABLE("activation", act_names);
static const name_table impl_table = TABLE("implementation", impl_names);
static const name_table init_table = TABLE("initialisation", init_names);
static const name_table opt_table = TABLE("optimizer", opt_names);
static const name_table sched_table = TABLE("learning-rate schedule", sched_names);

static const char *name_of(const name_table *t, int v)
{
    return v >= 0 && v < t->n ? t->names[v] : NULL;
}

static int parse(const name_table *t, const char *s, int *out, bp_error *err)
{
    for (int i = 0; s && i < t->n; i++)
        if (strcmp(s, t->names[i]) == 0) {
            *out = i;
            return BP_OK;
        }
    char list[128] = "";
    for (int i = 0; i < t->n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, t->names[i], sizeof list - strlen(list) - 1);
    }
    return bp_fail(err, BP_ERR_ARG, "unknown %s '%s' (one of: %s)", t->what, s ? s : "(null)",
                   list);
}

const char *bp_act_name(bp_act v) { return name_of(&act_table, (int)v); }
const char *bp_impl_name(bp_impl v) { return name_of(&impl_table, (int)v); }
const char *bp_init_name(bp_init v) { return name_of(&init_table, (int)v); }
const char *bp_opt_name(bp_opt_kind v) { return name_of(&opt_table, (int)v); }
const char *bp_sched_name(bp_sched_kind v) { return name_of(&sched_table, (int)v); }

/* The enums' storage is an int on every ABI this builds for; parse through a local int so no
 * enum object is ever written with a value outside its range. */
#define PARSER(fn, type, table)                                                                 \
    int fn(const char *s, type *out, bp_error *err)                                             \
    {                                                                                           \
        int v = 0, st = parse(&table, s, &v, err);                                                  \
        if (st == BP_OK)                                                                        \
            *out = (type)v;                                                                     \
        return st;                                                                              \
    }
PARSER(bp_act_parse, bp_act, act_table)
PARSER(bp_impl_parse, bp_impl, impl_table)
PARSER(bp_init_parse, bp_init, init_table)
PARSER(bp_opt_parse, bp_opt_kind, opt_table)
PARSER(bp_sched_parse, bp_sched_kind, sched_table)

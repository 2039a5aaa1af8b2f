/*
 * result: lookups in the result code table (include/proxyd/result.h).
 */
#include "proxyd/result.h"

struct row {
    const char *text;
    enum pd_result_class cls;
    int hit_bytes;
    enum pd_result aborted;
};

#define ROW_(arg, id, text, cls, hitb, ab) [PD_R_##id] = { text, cls, hitb, PD_R_##ab },
static const struct row rows[PD_R__N] = {
    [PD_R_UNSET] = { "NONE_NONE", PD_RC_NONE, 0, PD_R_UNSET },
    PD_RESULT_TABLE(ROW_, _)
};
#undef ROW_

static const struct row *row(enum pd_result r)
{
    return &rows[(unsigned)r < PD_R__N ? r : PD_R_UNSET];
}

const char *pd_result_text(enum pd_result r)
{
    return row(r)->text;
}

enum pd_result_class pd_result_class(enum pd_result r)
{
    return row(r)->cls;
}

int pd_result_hit_bytes(enum pd_result r)
{
    return row(r)->hit_bytes;
}

enum pd_result pd_result_aborted(enum pd_result r)
{
    return row(r)->aborted;
}

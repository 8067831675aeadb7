/* ModSecurity v3 as an oracle for tests/crs_oracle.rs: which rules a request matches.
 * argv[1..]: rules files, loaded in order (a rule set such as CRS). stdin: request records
 * (modsecurity_records.h). stdout: one line per record: the ids of the rules that logged,
 * in order, separated by spaces ("-" for none). The response is not run: the tests
 * compared are request ones. */
#include "modsecurity_records.h"

static char ids[65536];

static void on_log(void *data, const void *msg) {
    (void)data;
    const char *m = (const char *)msg;
    const char *p = strstr(m, "[id \"");
    if (!p) return;
    p += 5;
    size_t n = strcspn(p, "\"");
    if (strlen(ids) + n + 2 < sizeof ids) {
        if (ids[0]) strcat(ids, " ");
        strncat(ids, p, n);
    }
}

int main(int argc, char **argv) {
    ModSecurity *ms = msc_init();
    msc_set_log_cb(ms, on_log);
    RulesSet *rs = msc_create_rules_set();
    const char *err = NULL;
    for (int i = 1; i < argc; i++) {
        if (msc_rules_add_file(rs, argv[i], &err) < 0) {
            fprintf(stderr, "rules %s: %s\n", argv[i], err ? err : "?");
            return 4;
        }
    }
    for (;;) {
        ids[0] = 0;
        Transaction *t = next_request(ms, rs);
        if (t == NULL) break;
        msc_process_logging(t);
        printf("%s\n", ids[0] ? ids : "-");
        fflush(stdout);
        msc_transaction_cleanup(t);
    }
    return 0;
}

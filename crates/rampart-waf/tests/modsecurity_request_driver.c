/* ModSecurity v3 as an oracle for tests/collections_differential.rs: what its collections
 * hold for a request. argv[1]: a rules file whose rules append every variable they see to
 * TX:acc and whose last rule hands TX:acc back in a redirect. stdin: request records
 * (modsecurity_records.h). stdout: one line per record: the redirect URL after "http://r/",
 * hex-encoded (the values may hold any byte), or "-" when there was none. */
#include "modsecurity_records.h"

int main(int argc, char **argv) {
    ModSecurity *ms = msc_init();
    RulesSet *rs = msc_create_rules_set();
    const char *err = NULL;
    if (argc < 2 || msc_rules_add_file(rs, argv[1], &err) < 0) {
        fprintf(stderr, "rules: %s\n", err ? err : "no file");
        return 4;
    }
    Transaction *t;
    while ((t = next_request(ms, rs)) != NULL) {
        ModSecurityIntervention it;
        memset(&it, 0, sizeof it);
        it.status = 200;
        if (msc_intervention(t, &it) && it.url && strncmp(it.url, "http://r/", 9) == 0) {
            for (const unsigned char *p = (const unsigned char *)it.url + 9; *p; p++)
                printf("%02x", *p);
            printf("\n");
        } else {
            printf("-\n");
        }
        free(it.url);
        free(it.log);
        msc_transaction_cleanup(t);
    }
    return 0;
}

/* ModSecurity v3 (libmodsecurity, as Debian ships it) as an oracle for
 * tests/transform_differential.rs. argv: transformation names. For each, one rule set:
 *   SecRule REQUEST_HEADERS:x-v "@unconditionalMatch" "id:1,phase:1,t:none,t:NAME,t:hexEncode,
 *       redirect:http://r/%{MATCHED_VAR}"
 * so the transformed value comes back, hex-encoded (no NUL can cut it short), in the
 * intervention's URL. With `--op` first, each argument is an operator instead
 * (`@pm a b`, `@pmFromFile /abs/path`) in a rule `... "OP" "id:1,phase:1,t:none,
 * redirect:http://r/1"`: the field is 1 when it matched. stdin: records (4-byte little-endian length, then the bytes), each
 * sent as the value of header x-v; stdout: one line per record, one field per
 * transformation: the hex, or "-" when the rule did not run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>
#include <modsecurity/intervention.h>

int main(int argc, char **argv) {
    ModSecurity *ms = msc_init();
    int ops = argc > 1 && strcmp(argv[1], "--op") == 0;
    int first = ops ? 2 : 1;
    int n = argc - first;
    if (n < 1) return 1;
    RulesSet **rs = calloc((size_t)n, sizeof(*rs));
    for (int i = 0; i < n; i++) {
        char rule[16384];
        if (ops)
            snprintf(rule, sizeof rule,
                     "SecRuleEngine On\n"
                     "SecRule REQUEST_HEADERS:x-v \"%s\" "
                     "\"id:1,phase:1,t:none,redirect:http://r/1\"\n",
                     argv[i + first]);
        else
            snprintf(rule, sizeof rule,
                     "SecRuleEngine On\n"
                     "SecRule REQUEST_HEADERS:x-v \"@unconditionalMatch\" "
                     "\"id:1,phase:1,t:none,t:%s,t:hexEncode,redirect:http://r/%%{MATCHED_VAR}\"\n",
                     argv[i + first]);
        const char *err = NULL;
        rs[i] = msc_create_rules_set();
        if (msc_rules_add(rs[i], rule, &err) < 0) {
            fprintf(stderr, "%s: %s\n", argv[i + first], err ? err : "?");
            return 4;
        }
    }
    unsigned char len_le[4];
    size_t cap = 1 << 16;
    unsigned char *buf = malloc(cap);
    while (fread(len_le, 1, 4, stdin) == 4) {
        size_t len = (size_t)len_le[0] | (size_t)len_le[1] << 8 | (size_t)len_le[2] << 16 |
                     (size_t)len_le[3] << 24;
        if (len > cap) {
            cap = len;
            buf = realloc(buf, cap);
        }
        if (len && fread(buf, 1, len, stdin) != len) return 3;
        for (int i = 0; i < n; i++) {
            Transaction *t = msc_new_transaction(ms, rs[i], NULL);
            msc_process_connection(t, "127.0.0.1", 40000, "127.0.0.1", 80);
            msc_process_uri(t, "/", "GET", "1.1");
            msc_add_n_request_header(t, (const unsigned char *)"x-v", 3, buf, len);
            msc_process_request_headers(t);
            ModSecurityIntervention it;
            memset(&it, 0, sizeof it);
            it.status = 200;
            const char *out = "-";
            if (msc_intervention(t, &it) && it.url && strncmp(it.url, "http://r/", 9) == 0)
                out = it.url + 9;
            printf("%s%s", i ? " " : "", *out ? out : "=");
            free(it.url);
            free(it.log);
            msc_transaction_cleanup(t);
        }
        printf("\n");
    }
    return 0;
}

/* ModSecurity v3 as an oracle for tests/crs_oracle.rs: which rules a request matches.
 * argv[1..]: rules files, loaded in order (a rule set such as CRS). stdin: the records of
 * modsecurity_request_driver.c (method, URI, protocol version, header count, headers,
 * body). stdout: one line per record: the ids of the rules that logged, in order, separated
 * by spaces ("-" for none). The response is not run: the tests compared are request ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>
#include <modsecurity/intervention.h>

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

static unsigned char *field(size_t *len) {
    unsigned char l[4];
    if (fread(l, 1, 4, stdin) != 4) return NULL;
    *len = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
    unsigned char *b = malloc(*len + 1);
    if (*len && fread(b, 1, *len, stdin) != *len) exit(3);
    b[*len] = 0;
    return b;
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
    size_t n;
    unsigned char *method;
    while ((method = field(&n)) != NULL) {
        unsigned char *uri = field(&n), *version = field(&n), *count = field(&n);
        ids[0] = 0;
        Transaction *t = msc_new_transaction(ms, rs, NULL);
        msc_process_connection(t, "127.0.0.1", 40000, "127.0.0.1", 80);
        msc_process_uri(t, (char *)uri, (char *)method, (char *)version);
        int headers = atoi((char *)count);
        for (int i = 0; i < headers; i++) {
            size_t kl, vl;
            unsigned char *k = field(&kl), *v = field(&vl);
            msc_add_n_request_header(t, k, kl, v, vl);
            free(k);
            free(v);
        }
        msc_process_request_headers(t);
        size_t bl;
        unsigned char *body = field(&bl);
        if (bl) msc_append_request_body(t, body, bl);
        msc_process_request_body(t);
        msc_process_logging(t);
        printf("%s\n", ids[0] ? ids : "-");
        fflush(stdout);
        msc_transaction_cleanup(t);
        free(method);
        free(uri);
        free(version);
        free(count);
        free(body);
    }
    return 0;
}

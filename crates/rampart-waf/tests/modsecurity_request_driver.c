/* ModSecurity v3 as an oracle for tests/collections_differential.rs: what its collections
 * hold for a request. argv[1]: a rules file whose rules append every variable they see to
 * TX:acc and whose last rule hands TX:acc back in a redirect. stdin: records of
 * length-prefixed fields (4-byte little-endian length, then the bytes): method, URI,
 * protocol version, number of headers (as text), each header's name and value, body.
 * stdout: one line per record: the redirect URL after "http://r/", hex-encoded (the values
 * may hold any byte), or "-" when there was none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>
#include <modsecurity/intervention.h>

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
    RulesSet *rs = msc_create_rules_set();
    const char *err = NULL;
    if (argc < 2 || msc_rules_add_file(rs, argv[1], &err) < 0) {
        fprintf(stderr, "rules: %s\n", err ? err : "no file");
        return 4;
    }
    size_t n;
    unsigned char *method;
    while ((method = field(&n)) != NULL) {
        unsigned char *uri = field(&n), *version = field(&n), *count = field(&n);
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
        free(method);
        free(uri);
        free(version);
        free(count);
        free(body);
    }
    return 0;
}

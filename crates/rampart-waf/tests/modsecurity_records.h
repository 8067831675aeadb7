/* The request records the ModSecurity oracle drivers read on stdin (see corpus::
 * request_record): length-prefixed fields (4-byte little-endian length, then the bytes):
 * method, URI, protocol version, number of headers (as text), each header's name and
 * value, body. Included by modsecurity_request_driver.c and modsecurity_rules_driver.c. */
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

/* Reads the next record and runs it through phases 1 and 2 in a new transaction; NULL at
 * the end of the input. The caller cleans the transaction up. */
static Transaction *next_request(ModSecurity *ms, RulesSet *rs) {
    size_t n;
    unsigned char *method = field(&n);
    if (method == NULL) return NULL;
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
    free(method);
    free(uri);
    free(version);
    free(count);
    free(body);
    return t;
}

/* The C libinjection as an oracle for tests/libinjection_differential.rs: reads records
 * (4-byte little-endian length, then the bytes) from stdin until EOF and prints one line
 * per record: "<is_sqli> <fingerprint or -> <is_xss>", calling the library exactly as
 * ModSecurity v3's @detectSQLi and @detectXSS operators do. */
#include <stdio.h>
#include <stdlib.h>
#include "libinjection.h"

int main(void) {
    unsigned char len_le[4];
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    if (!buf) return 2;
    while (fread(len_le, 1, 4, stdin) == 4) {
        size_t n = (size_t)len_le[0] | (size_t)len_le[1] << 8 | (size_t)len_le[2] << 16 |
                   (size_t)len_le[3] << 24;
        if (n > cap) {
            cap = n;
            buf = realloc(buf, cap);
            if (!buf) return 2;
        }
        if (n && fread(buf, 1, n, stdin) != n) return 3;
        char fp[8] = {0};
        int sqli = libinjection_sqli(buf, n, fp);
        int xss = libinjection_xss(buf, n);
        printf("%d %s %d\n", sqli, sqli ? fp : "-", xss);
    }
    free(buf);
    return 0;
}

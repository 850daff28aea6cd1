/* http internals shared by its files and their tests (not a public
 * header). */
#ifndef HUB_HTTP_INTERNAL_H
#define HUB_HTTP_INTERNAL_H

#include "hub/core.h"

/* Case-insensitive: is s[0..n) exactly `lit`? */
bool hub__fhir_mime_is(const char *s, size_t n, const char *lit);
/* The format a media type (parameters ignored) or _format value names:
 * 0 JSON, 1 XML, -1 neither (application/fhir+json, application/json,
 * json, text/json; the same for XML). */
int hub__fhir_media_format(const char *s, size_t n);
/* The format an Accept header asks for: the first supported type listed
 * (q=0 excluded), `def` for a wildcard or no header, -1 when it lists
 * none of ours. */
int hub__fhir_accept(const char *accept, int def);
/* [A-Za-z0-9-.]{1,64} */
bool hub__fhir_valid_id(const char *s, size_t n);
/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); out has 40 bytes. */
void hub__fhir_http_date(int64_t ms, char out[40]);
/* ms since the epoch, -1 when `s` is not an IMF-fixdate. */
int64_t hub__fhir_parse_http_date(const char *s);
/* A FHIR instant, dateTime or date as ms since the epoch; -1 when
 * malformed. */
int64_t hub__fhir_parse_instant(const char *s);
/* W/"3", "3" or 3 -> 3; -1 otherwise. */
int64_t hub__fhir_parse_etag(const char *s);

#endif

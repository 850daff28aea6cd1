/* FHIR XML <-> the JSON form, driven by the element table.
 *
 * XML -> JSON streams: libxml2's SAX2 parser calls us per element and we
 * build the jansson value directly, with a stack of frames, one per open
 * element, each knowing its definition in the table. No DOM is built.
 *
 * Security: the parser runs with XML_PARSE_NONET and without
 * XML_PARSE_NOENT/DTDLOAD, and any DOCTYPE stops the parse at once (the
 * internalSubset callback fires before a single declaration of the internal
 * subset is read), so no entity can be declared, loaded or expanded. The only
 * references left are the five predefined entities and character references.
 *
 * The narrative (Narrative.div, type xhtml) is carried in JSON as the exact
 * text of the div element in the XML input: we note the byte offsets of its
 * start and end tags and copy that slice, adding the XHTML namespace
 * declaration when the div inherits it. JSON -> XML writes the string back
 * verbatim after checking, with a parse of its own, that it is exactly one
 * well-formed div element in the XHTML namespace (so no text of a JSON
 * resource can inject XML into the output).
 *
 * Numbers: jansson keeps a number as a json_int_t or a double, never as text,
 * so a decimal's lexical form ("1.50", "1e3") cannot survive in a json_t.
 * We choose exactness of value over form: an XML decimal without '.' or an
 * exponent becomes a JSON integer (as jansson would parse the same text),
 * anything else a real; JSON -> XML writes an integer as is and a real in
 * the shortest form that reads back to the same double, with ".0" added when
 * that form would look like an integer. So JSON -> XML -> JSON gives back an
 * equal json_t; XML -> JSON -> XML keeps every value but may rewrite "1.50"
 * as "1.5" and "1e3" as "1000.0". */
#include "hub/limits.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

#define FHIR_NS "http://hl7.org/fhir"
#define XHTML_NS "http://www.w3.org/1999/xhtml"
#define XSI_NS "http://www.w3.org/2001/XMLSchema-instance"

/* libxml2 reports some errors (encoding conversion) with no parser context,
 * to its "generic" handler, which prints to stderr; ours come through the
 * parser's structured handler, so those are dropped. The handler is per
 * thread: set for new threads once and for the calling thread each time. */
static void xml_silent(void *ctx, const char *msg, ...) {
    (void)ctx;
    (void)msg;
}
static pthread_once_t xml_once = PTHREAD_ONCE_INIT;
static void xml_init(void) {
    xmlInitParser();
    xmlThrDefSetGenericErrorFunc(NULL, xml_silent);
}
static void xml_enter(void) {
    pthread_once(&xml_once, xml_init);
    xmlSetGenericErrorFunc(NULL, xml_silent);
}

/* ---- shared helpers ---------------------------------------------------- */

static bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }

/* Element.id (on everything but resources) and Extension.url are XML
 * attributes, not elements (the spec's xml-representation = xmlAttr). */
static bool is_attr_elem(const hub_fhir_elem *e, bool parent_is_resource) {
    if (streq(e->name, "id")) return !parent_is_resource;
    return streq(e->name, "url") && streq(e->path, "Extension.url");
}

/* Where the children of `e` (of the chosen `type`) are defined. */
static const char *children_key(const hub_fhir_elem *e, const char *type) {
    if (e->choice || e->children_key == NULL) return type;
    return e->children_key;
}

typedef enum { PK_STRING, PK_BOOLEAN, PK_INTEGER, PK_DECIMAL } prim_kind;
typedef enum { TC_COMPLEX, TC_PRIMITIVE, TC_XHTML, TC_RESOURCE } type_class;

/* What a child element is: its definition, the type its name chose, and
 * how that type is written. The table's internals (hub/fhir/internal.h)
 * spare us a lookup of the parent's group per child. */
typedef struct {
    const hub_fhir_elem *e;
    const char *type;
    type_class cls;
    prim_kind pk;
} child_info;

static uint32_t group_of(const hub_fhir_defs *d, const char *key) {
    return hub__fhir_group_get(d, key, strlen(key));
}

/* A group's elements are contiguous in the table, in definition order. */
static const hub_fhir_elem *group_first(const hub_fhir_defs *d, uint32_t g) {
    return g == HUB__FHIR_NONE ? NULL : &d->elems[d->groups[g].start];
}

static void classify(const hub_fhir_defs *d, const char *type, child_info *ci) {
    const hub__fhir_type *t = hub__fhir_type_get(d, type, strlen(type));
    ci->cls = TC_COMPLEX;
    ci->pk = PK_STRING;
    if (t == NULL) {
        /* Resource/DomainResource are always in the table; anything
         * unknown is treated as a structure */
        return;
    }
    switch ((hub__fhir_kind)t->kind) {
    case HUB__FK_RESOURCE:
    case HUB__FK_ABSTRACT_RESOURCE:
        ci->cls = TC_RESOURCE;
        return;
    case HUB__FK_PRIMITIVE:
        break;
    default:
        return;
    }
    ci->cls = TC_PRIMITIVE;
    switch ((hub__fhir_prim)t->prim) {
    case HUB__FP_BOOLEAN: ci->pk = PK_BOOLEAN; break;
    case HUB__FP_INTEGER:
    case HUB__FP_UNSIGNED:
    case HUB__FP_POSITIVE: ci->pk = PK_INTEGER; break;
    case HUB__FP_DECIMAL: ci->pk = PK_DECIMAL; break;
    case HUB__FP_XHTML: ci->cls = TC_XHTML; break;
    default: break;
    }
}

/* The child of group `g` named (p, n); false when there is none. */
static bool child_lookup(const hub_fhir_defs *d, uint32_t g, const char *p, size_t n,
                         child_info *ci) {
    if (g == HUB__FHIR_NONE) return false;
    uint32_t t = 0;
    uint32_t i = hub__fhir_child_get(d, g, p, n, &t);
    if (i == HUB__FHIR_NONE) return false;
    ci->e = &d->elems[i];
    ci->type = ci->e->types[t];
    classify(d, ci->type, ci);
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* FHIR's integer: -?([0]|([1-9][0-9]*)) */
static bool lex_integer(const char *s, size_t n) {
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n || !is_digit(s[i])) return false;
    if (s[i] == '0') return i + 1 == n;
    while (i < n && is_digit(s[i])) i++;
    return i == n;
}

/* FHIR's decimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool lex_decimal(const char *s, size_t n, bool *integral) {
    size_t i = 0;
    *integral = true;
    if (i < n && s[i] == '-') i++;
    if (i >= n || !is_digit(s[i])) return false;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && s[i] == '.') {
        *integral = false;
        i++;
        if (i >= n || !is_digit(s[i])) return false;
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *integral = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) return false;
        while (i < n && is_digit(s[i])) i++;
    }
    return i == n;
}

typedef enum { DIV_BAD, DIV_NOMEM, DIV_XHTML, DIV_NO_NS } div_form;
static div_form div_check(const char *s, size_t n);

/* As hub_fhir_parse_json: more significant digits than FHIR asks
 * implementations to keep would be lost silently in a double. */
#define MAX_DECIMAL_DIGITS 18

/* Significant digits of a valid decimal: leading zeros do not count,
 * trailing ones do (they state precision). */
static int sig_digits(const char *p, size_t n) {
    int k = 0;
    bool lead = true;
    for (size_t i = 0; i < n && p[i] != 'e' && p[i] != 'E'; i++) {
        if (p[i] == '-' || p[i] == '.') continue;
        if (lead && p[i] == '0') continue;
        lead = false;
        k++;
    }
    return k;
}

/* ======================================================================== */
/* XML -> JSON                                                              */
/* ======================================================================== */

typedef enum {
    F_RESOURCE,  /* a resource's element: obj is the resource */
    F_COMPLEX,   /* a datatype or backbone element: obj is its object */
    F_PRIMITIVE, /* value in `value`, id/extension in obj (the "_name" form) */
    F_WRAPPER,   /* contained etc.: obj is the one resource inside */
    F_DIV        /* the narrative: skipped, copied from the input as text */
} frame_kind;

typedef struct {
    frame_kind kind;
    bool has_prim_arrays;    /* obj holds aligned primitive arrays to tidy */
    bool text_reported;
    bool reported; /* an issue already names this element */
    const hub_fhir_elem *elem; /* its definition; NULL for resources */
    const char *name;          /* its element name (libxml2's dictionary) */
    const char *key;           /* where its children are defined */
    uint32_t group;            /* ... as the table's group */
    const hub_fhir_elem *kids; /* the group's first element */
    uint64_t seen;             /* children met, by position in the group */
    long last_pos;             /* position of the last child met, or -1 */
    const char *type;
    json_t *obj;
    json_t *value;
    long index; /* position in its parent's array, -1 when not repeating */
    size_t div_start;
    const char *div_prefix; /* the div's own namespace needs declaring */
    bool div_declare;
    bool div_prefixed; /* prefixes inside: check it stands on its own */
} frame;

typedef struct {
    const hub_fhir_defs *d;
    xmlParserCtxtPtr ctxt;
    const char *in;
    size_t n;
    hub_oo *oo;
    hub_status rc; /* worst so far: HUB_OK, HUB_E_INVALID, or a fatal one */
    bool stopped;
    int depth;     /* open elements, including skipped ones */
    int skip;      /* > 0: inside an element being ignored (or the div) */
    size_t nframes;
    frame frames[HUB_MAX_XML_DEPTH];
    json_t *root;
    const hub_fhir_elem *elem_ext; /* Element.extension */
    uint32_t ext_group;            /* the children of Extension */
} x2j;

static void oo_add(x2j *x, hub_oo_severity sev, const char *code, const char *expr,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void oo_add(x2j *x, hub_oo_severity sev, const char *code, const char *expr,
                   const char *fmt, ...) {
    if (x->oo == NULL) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hub_oo_add(x->oo, sev, code, expr, "%s", msg);
}

static int cur_line(x2j *x) { return x->ctxt ? xmlSAX2GetLineNumber(x->ctxt) : 0; }

/* A fatal problem: record it and stop the parser. */
static void x_fatal(x2j *x, hub_status rc, const char *code, const char *expr,
                    const char *what) {
    if (!x->stopped) {
        oo_add(x, HUB_OO_FATAL, code, expr, "%s (line %d)", what, cur_line(x));
        x->rc = rc;
        x->stopped = true;
    }
    if (x->ctxt) xmlStopParser(x->ctxt);
}

/* The FHIRPath of the open element, plus `child` (with `[idx]` if >= 0). */
static void x_path(x2j *x, const char *child, long idx, char *out, size_t cap) {
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < x->nframes && k < cap; i++) {
        const frame *f = &x->frames[i];
        int w;
        if (i == 0) {
            w = snprintf(out + k, cap - k, "%s", f->name);
        } else if (f->kind == F_RESOURCE && x->frames[i - 1].kind == F_WRAPPER) {
            continue; /* the wrapper names it: contained[0].name */
        } else if (f->index >= 0) {
            w = snprintf(out + k, cap - k, ".%s[%ld]", f->name, f->index);
        } else {
            w = snprintf(out + k, cap - k, ".%s", f->name);
        }
        if (w < 0) return;
        k += (size_t)w;
    }
    if (child && k < cap) {
        if (x->nframes == 0)
            snprintf(out + k, cap - k, "%s", child);
        else if (idx >= 0)
            snprintf(out + k, cap - k, ".%s[%ld]", child, idx);
        else
            snprintf(out + k, cap - k, ".%s", child);
    }
}

/* An error that does not stop the conversion: the element is skipped. */
static void x_invalid(x2j *x, const char *code, const char *child, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
static void x_invalid(x2j *x, const char *code, const char *child, const char *fmt,
                      ...) {
    char path[256], msg[200];
    x_path(x, child, -1, path, sizeof path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    oo_add(x, HUB_OO_ERROR, code, path, "%s (line %d)", msg, cur_line(x));
    if (x->rc == HUB_OK) x->rc = HUB_E_INVALID;
}

static void x_nomem(x2j *x) { x_fatal(x, HUB_E_NOMEM, "exception", NULL, "out of memory"); }

/* Byte offset of the parser in the input. Valid because we only accept
 * input that libxml2 reads without converting (UTF-8). */
static size_t x_offset(x2j *x) {
    xmlParserInputPtr in = x->ctxt->input;
    return (size_t)in->consumed + (size_t)(in->cur - in->base);
}

/* Attribute values arrive with '&' written as "&#38;" (libxml2 does that
 * when it does not substitute entities); every other reference is already
 * decoded. */
static json_t *attr_string(const xmlChar *v, const xmlChar *end) {
    const char *p = (const char *)v;
    size_t n = (size_t)(end - v);
    if (memchr(p, '&', n) == NULL) return json_stringn(p, n);
    char *tmp = hub_malloc(n + 1);
    if (tmp == NULL) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '&' && i + 5 <= n && memcmp(p + i, "&#38;", 5) == 0) {
            tmp[k++] = '&';
            i += 4;
        } else {
            tmp[k++] = p[i];
        }
    }
    json_t *s = json_stringn(tmp, k);
    hub_free(tmp);
    return s;
}

/* A primitive's value attribute as the JSON value its type asks for. */
static json_t *prim_value(x2j *x, prim_kind pk, const char *type, const char *elname,
                          const xmlChar *v, const xmlChar *end) {
    const char *p = (const char *)v;
    size_t n = (size_t)(end - v);
    switch (pk) {
    case PK_BOOLEAN:
        if (n == 4 && memcmp(p, "true", 4) == 0) return json_true();
        if (n == 5 && memcmp(p, "false", 5) == 0) return json_false();
        x_invalid(x, "value", elname, "value of type 'boolean' is not true or false");
        return NULL;
    case PK_INTEGER: {
        char buf[32];
        if (!lex_integer(p, n) || n >= sizeof buf) {
            x_invalid(x, "value", elname, "value is not a valid '%s'", type);
            return NULL;
        }
        memcpy(buf, p, n);
        buf[n] = '\0';
        errno = 0;
        long long ll = strtoll(buf, NULL, 10);
        if (errno == ERANGE) {
            x_invalid(x, "value", elname, "value of type '%s' out of range", type);
            return NULL;
        }
        return json_integer((json_int_t)ll);
    }
    case PK_DECIMAL: {
        bool integral;
        char buf[64];
        if (!lex_decimal(p, n, &integral) || n >= sizeof buf) {
            x_invalid(x, "value", elname, "value is not a valid 'decimal'");
            return NULL;
        }
        if (sig_digits(p, n) > MAX_DECIMAL_DIGITS) {
            /* a double holds no more; the JSON parser refuses them too */
            x_invalid(x, "value", elname, "decimal has more than %d significant digits",
                      MAX_DECIMAL_DIGITS);
            return NULL;
        }
        memcpy(buf, p, n);
        buf[n] = '\0';
        if (integral) {
            errno = 0;
            long long ll = strtoll(buf, NULL, 10);
            if (errno != ERANGE) return json_integer((json_int_t)ll);
        }
        double dv = strtod(buf, NULL);
        json_t *r = json_real(dv);
        if (r == NULL) x_invalid(x, "value", elname, "value of type 'decimal' out of range");
        return r;
    }
    default:
        return attr_string(v, end);
    }
}

static bool set_new(x2j *x, json_t *obj, const char *key, json_t *v) {
    if (v == NULL || json_object_set_new(obj, key, v) != 0) {
        x_nomem(x);
        return false;
    }
    return true;
}

/* The "_name" key for `name`, in `buf`. */
static const char *under_key(const char *name, char *buf, size_t cap) {
    size_t n = strlen(name);
    if (n + 2 > cap) return NULL;
    buf[0] = '_';
    memcpy(buf + 1, name, n + 1);
    return buf;
}

/* Puts a finished child value into the frame `p` under `name`: an array
 * when the element repeats. Takes `v`. */
static void attach(x2j *x, frame *p, const char *name, bool repeats, json_t *v) {
    if (!repeats) {
        set_new(x, p->obj, name, v);
        return;
    }
    json_t *arr = json_object_get(p->obj, name);
    if (arr == NULL) {
        arr = json_array();
        if (!set_new(x, p->obj, name, arr)) {
            json_decref(v);
            return;
        }
    }
    if (json_array_append_new(arr, v) != 0) x_nomem(x);
}

/* Primitive: value into "name", id/extension into "_name"; for a repeating
 * element both arrays grow together (null where one side has nothing) and
 * all-null arrays are dropped when the parent closes. */
static void attach_primitive(x2j *x, frame *p, frame *f) {
    char ubuf[128];
    const char *ukey = under_key(f->name, ubuf, sizeof ubuf);
    if (ukey == NULL) {
        x_fatal(x, HUB_E_INVALID, "structure", NULL, "element name too long");
        return;
    }
    if (f->elem->max <= 1) {
        if (f->value && !set_new(x, p->obj, f->name, f->value)) f->value = NULL;
        f->value = NULL;
        if (f->obj && !set_new(x, p->obj, ukey, f->obj)) f->obj = NULL;
        f->obj = NULL;
        return;
    }
    json_t *va = json_object_get(p->obj, f->name);
    json_t *ua = json_object_get(p->obj, ukey);
    if (va == NULL) {
        va = json_array();
        if (!set_new(x, p->obj, f->name, va)) return;
    }
    if (ua == NULL) {
        ua = json_array();
        if (!set_new(x, p->obj, ukey, ua)) return;
    }
    /* Both arrays stay aligned because every item appends to both (the
     * _new calls take their value even when they fail). */
    int r1 = json_array_append_new(va, f->value ? f->value : json_null());
    int r2 = json_array_append_new(ua, f->obj ? f->obj : json_null());
    f->value = f->obj = NULL;
    if (r1 != 0 || r2 != 0) x_nomem(x);
    p->has_prim_arrays = true;
}

static bool all_null(const json_t *arr) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!json_is_null(v)) return false;
    return true;
}

/* Drops the all-null side of aligned primitive arrays. "x" was inserted
 * before "_x" (attach_primitive), so deleting it while at "_x" leaves the
 * iteration's next entry alone. */
static void tidy_prim_arrays(json_t *obj) {
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, k, v) {
        if (k[0] != '_' || !json_is_array(v)) continue;
        json_t *vals = json_object_get(obj, k + 1);
        if (all_null(v)) {
            json_object_del(obj, k);
        } else if (vals && json_is_array(vals) && all_null(vals)) {
            json_object_del(obj, k + 1);
        }
    }
}

static frame *push(x2j *x, frame_kind kind, const char *name) {
    frame *f = &x->frames[x->nframes++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->name = name;
    f->index = -1;
    f->last_pos = -1;
    return f;
}

static void frame_release(frame *f) {
    json_decref(f->obj);
    json_decref(f->value);
    f->obj = f->value = NULL;
}

static bool is_xml_space(const xmlChar *s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return false;
    return true;
}

/* Attributes of a complex element: id (not on resources), url (Extension). */
static void complex_attrs(x2j *x, frame *f, int nattr, const xmlChar **attrs,
                          bool is_resource) {
    for (int i = 0; i < nattr; i++) {
        const xmlChar **a = attrs + 5 * i;
        const char *an = (const char *)a[0];
        if (a[2] != NULL) {
            if (is_resource && x->nframes == 1 && streq((const char *)a[2], XSI_NS))
                continue; /* xsi:schemaLocation on the root is common */
            x_invalid(x, "structure", NULL, "unknown attribute '%s'", an);
            continue;
        }
        if (!is_resource && (streq(an, "id") || (streq(an, "url") && streq(f->key, "Extension")))) {
            if (!set_new(x, f->obj, an, attr_string(a[3], a[4]))) return;
            continue;
        }
        x_invalid(x, "structure", NULL, "unknown attribute '%s'", an);
    }
}

/* Opens the frame of a resource (the root, or one inside a wrapper such
 * as Bundle.entry.resource) and starts its object with resourceType. */
static void open_resource(x2j *x, const char *type, int nattr, const xmlChar **attrs) {
    frame *f = push(x, F_RESOURCE, type);
    f->key = type;
    f->group = group_of(x->d, type);
    f->kids = group_first(x->d, f->group);
    f->type = type;
    f->obj = json_object();
    if (!set_new(x, f->obj, "resourceType", json_string(type))) return;
    complex_attrs(x, f, nattr, attrs, true);
}

static void x_start_resource(x2j *x, const char *local, const char *uri, int nattr,
                             const xmlChar **attrs) {
    if (uri == NULL || !streq(uri, FHIR_NS)) {
        x_fatal(x, HUB_E_INVALID, "structure", NULL,
                "root element is not in the FHIR namespace");
        return;
    }
    if (!hub_fhir_is_resource(x->d, local)) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown resource type '%.64s'", local);
        x_fatal(x, HUB_E_INVALID, "structure", NULL, msg);
        return;
    }
    open_resource(x, local, nattr, attrs);
}

/* Does an element of the narrative use a namespace prefix (xml: aside)?
 * Then the prefix may be declared outside the div. */
static bool uses_prefix(const xmlChar *prefix, int nattr, const xmlChar **attrs) {
    if (prefix != NULL) return true;
    for (int i = 0; i < nattr; i++) {
        const char *ap = (const char *)attrs[5 * i + 1];
        if (ap != NULL && !streq(ap, "xml")) return true;
    }
    return false;
}

static void x_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                    const xmlChar *URI, int nb_namespaces, const xmlChar **namespaces,
                    int nb_attributes, int nb_defaulted, const xmlChar **attributes) {
    (void)nb_defaulted;
    x2j *x = ctx;
    const char *local = (const char *)localname;
    const char *uri = (const char *)URI;
    if (x->stopped) return;
    if (++x->depth > HUB_MAX_XML_DEPTH) {
        x_fatal(x, HUB_E_LIMIT, "too-costly", NULL, "elements nested too deep");
        return;
    }
    if (x->skip > 0) {
        x->skip++;
        frame *top = x->nframes ? &x->frames[x->nframes - 1] : NULL;
        if (top && top->kind == F_DIV && !top->div_prefixed)
            top->div_prefixed = uses_prefix(prefix, nb_attributes, attributes);
        return;
    }
    if (x->nframes == 0) {
        x_start_resource(x, local, uri, nb_attributes, attributes);
        return;
    }
    frame *p = &x->frames[x->nframes - 1];

    if (p->kind == F_WRAPPER) {
        if (uri == NULL || !streq(uri, FHIR_NS) || !hub_fhir_is_resource(x->d, local)) {
            x_invalid(x, "structure", NULL, "'%s' is not a resource type", local);
            x->skip = 1;
            return;
        }
        if (p->obj != NULL) {
            x_invalid(x, "structure", NULL, "more than one resource in one element");
            x->skip = 1;
            return;
        }
        open_resource(x, local, nb_attributes, attributes);
        return;
    }

    if (p->kind == F_PRIMITIVE) {
        /* A primitive's children are its extensions only. */
        if (uri == NULL || !streq(uri, FHIR_NS) || !streq(local, "extension")) {
            x_invalid(x, "structure", local, "unknown element '%s'", local);
            x->skip = 1;
            return;
        }
        const hub_fhir_elem *e = x->elem_ext;
        if (e == NULL || x->ext_group == HUB__FHIR_NONE) {
            x_fatal(x, HUB_E_CONFIG, "exception", NULL, "element table lacks Element.extension");
            return;
        }
        if (p->obj == NULL && (p->obj = json_object()) == NULL) {
            x_nomem(x);
            return;
        }
        json_t *arr = json_object_get(p->obj, "extension");
        frame *f = push(x, F_COMPLEX, local);
        f->elem = e;
        f->type = "Extension";
        f->key = "Extension";
        f->group = x->ext_group;
        f->kids = group_first(x->d, f->group);
        f->index = (long)json_array_size(arr);
        f->obj = json_object();
        if (f->obj == NULL) {
            x_nomem(x);
            return;
        }
        complex_attrs(x, f, nb_attributes, attributes, false);
        return;
    }

    if (p->kind != F_RESOURCE && p->kind != F_COMPLEX) return; /* not reached */

    child_info ci;
    if (!child_lookup(x->d, p->group, local, strlen(local), &ci) ||
        is_attr_elem(ci.e, p->kind == F_RESOURCE)) {
        x_invalid(x, "structure", local, "unknown element '%s'", local);
        x->skip = 1;
        return;
    }
    const hub_fhir_elem *e = ci.e;
    const char *type = ci.type;
    bool xhtml = ci.cls == TC_XHTML;
    /* FHIR XML keeps definition order; repeats of an element together */
    if (p->kids && e >= p->kids) {
        long pos = (long)(e - p->kids);
        if (pos < p->last_pos) {
            x_invalid(x, "structure", local, "element '%s' is out of order", local);
            x->skip = 1;
            return;
        }
        p->last_pos = pos;
    }
    if (uri == NULL || !streq(uri, xhtml ? XHTML_NS : FHIR_NS)) {
        x_invalid(x, "structure", local, "element '%s' is not in the %s namespace", local,
                  xhtml ? "XHTML" : "FHIR");
        x->skip = 1;
        return;
    }
    bool repeats = e->max > 1;
    long index = -1;
    if (repeats) {
        index = (long)json_array_size(json_object_get(p->obj, local));
        if (index == 0 && ci.cls == TC_PRIMITIVE) {
            char ub[128];
            const char *uk = under_key(local, ub, sizeof ub);
            if (uk) index = (long)json_array_size(json_object_get(p->obj, uk));
        }
    } else {
        /* once only; for a choice, one of its types only (no group of
         * the table has more than 64 children; a bit per child) */
        bool dup = false;
        size_t bit = (size_t)(e - p->kids);
        if (p->kids && e >= p->kids && bit < 64) {
            dup = (p->seen >> bit) & 1u;
            p->seen |= (uint64_t)1 << bit;
        } else if (json_object_get(p->obj, local) != NULL) {
            dup = true;
        } else {
            char ub[128];
            const char *uk = under_key(local, ub, sizeof ub);
            dup = uk && json_object_get(p->obj, uk) != NULL;
        }
        if (dup) {
            x_invalid(x, "structure", local, "element '%s' repeats", e->name);
            x->skip = 1;
            return;
        }
    }

    if (xhtml) {
        frame *f = push(x, F_DIV, local);
        f->elem = e;
        f->type = type;
        f->index = index;
        /* The parser stands at the end of the start tag; a raw '<' cannot
         * occur inside a tag, so the last one before is where it begins. */
        size_t off = x_offset(x);
        if (off > x->n) off = x->n;
        while (off > 0 && x->in[off - 1] != '<') off--;
        if (off == 0) {
            x_fatal(x, HUB_E_PARSE, "structure", NULL, "narrative not located in the input");
            return;
        }
        f->div_start = off - 1;
        /* Declared here, or inherited (then we add the declaration)? */
        bool declared = false;
        for (int i = 0; i < nb_namespaces; i++) {
            const char *np = (const char *)namespaces[2 * i];
            if (((np == NULL) == (prefix == NULL)) &&
                (np == NULL || streq(np, (const char *)prefix)))
                declared = true;
        }
        f->div_declare = !declared;
        f->div_prefix = (const char *)prefix;
        f->div_prefixed = uses_prefix(NULL, nb_attributes, attributes);
        x->skip = 1;
        return;
    }

    if (ci.cls == TC_PRIMITIVE) {
        frame *f = push(x, F_PRIMITIVE, local);
        f->elem = e;
        f->type = type;
        f->index = index;
        for (int i = 0; i < nb_attributes; i++) {
            const xmlChar **a = attributes + 5 * i;
            const char *an = (const char *)a[0];
            if (a[2] == NULL && streq(an, "value")) {
                json_t *v = prim_value(x, ci.pk, type, NULL, a[3], a[4]);
                if (v) {
                    json_decref(f->value);
                    f->value = v;
                } else {
                    f->reported = true; /* no second issue for the missing value */
                }
            } else if (a[2] == NULL && streq(an, "id")) {
                if (f->obj == NULL && (f->obj = json_object()) == NULL) {
                    x_nomem(x);
                    return;
                }
                if (!set_new(x, f->obj, "id", attr_string(a[3], a[4]))) return;
            } else {
                x_invalid(x, "structure", NULL, "unknown attribute '%s'", an);
            }
        }
        return;
    }

    bool wrapper = ci.cls == TC_RESOURCE;
    frame *f = push(x, wrapper ? F_WRAPPER : F_COMPLEX, local);
    f->elem = e;
    f->type = type;
    f->index = index;
    if (wrapper) {
        for (int i = 0; i < nb_attributes; i++)
            x_invalid(x, "structure", NULL, "unknown attribute '%s'",
                      (const char *)attributes[5 * i]);
        return;
    }
    f->key = children_key(e, type);
    f->group = group_of(x->d, f->key);
    f->kids = group_first(x->d, f->group);
    f->obj = json_object();
    if (f->obj == NULL) {
        x_nomem(x);
        return;
    }
    complex_attrs(x, f, nb_attributes, attributes, false);
}

/* The narrative's text: the input's bytes of the div element. */
static void x_end_div(x2j *x, frame *f, frame *p) {
    size_t end = x_offset(x);
    if (end > x->n || end <= f->div_start || x->in[end - 1] != '>') {
        x_fatal(x, HUB_E_PARSE, "structure", NULL, "narrative not located in the input");
        return;
    }
    const char *s = x->in + f->div_start;
    size_t n = end - f->div_start;
    json_t *str;
    if (!f->div_declare) {
        str = json_stringn(s, n);
    } else {
        /* "<div" + ' xmlns="..."' + the rest; the tag name follows '<' */
        size_t name_len = 1;
        while (name_len < n && s[name_len] != ' ' && s[name_len] != '>' &&
               s[name_len] != '/' && s[name_len] != '\t' && s[name_len] != '\n' &&
               s[name_len] != '\r')
            name_len++;
        hub_buf b;
        hub_buf_init(&b);
        hub_status rc = hub_buf_append(&b, s, name_len);
        if (rc == HUB_OK && f->div_prefix)
            rc = hub_buf_printf(&b, " xmlns:%s=\"" XHTML_NS "\"", f->div_prefix);
        else if (rc == HUB_OK)
            rc = hub_buf_append_cstr(&b, " xmlns=\"" XHTML_NS "\"");
        if (rc == HUB_OK) rc = hub_buf_append(&b, s + name_len, n - name_len);
        str = rc == HUB_OK ? json_stringn(b.p, b.n) : NULL;
        hub_buf_release(&b);
    }
    if (str == NULL) {
        x_nomem(x);
        return;
    }
    /* The text must stand on its own (the JSON form has no context). */
    if (f->div_prefixed) {
        div_form form = div_check(json_string_value(str), json_string_length(str));
        if (form != DIV_XHTML) {
            json_decref(str);
            if (form == DIV_NOMEM) {
                x_nomem(x);
                return;
            }
            x_invalid(x, "structure", NULL,
                      "narrative uses namespace prefixes declared outside it");
            return;
        }
    }
    attach(x, p, f->name, f->elem->max > 1, str);
}

static void x_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                  const xmlChar *URI) {
    (void)localname;
    (void)prefix;
    (void)URI;
    x2j *x = ctx;
    if (x->stopped) return;
    x->depth--;
    if (x->skip > 1) {
        x->skip--;
        return;
    }
    if (x->skip == 1) {
        x->skip = 0;
        /* The element skipped was an unknown one or the div; only the div
         * has a frame (a div's frame is on top exactly while skipping). */
        if (x->nframes == 0 || x->frames[x->nframes - 1].kind != F_DIV) return;
    }
    if (x->nframes == 0) return;
    frame *f = &x->frames[x->nframes - 1];
    frame *p = x->nframes > 1 ? &x->frames[x->nframes - 2] : NULL;

    switch (f->kind) {
    case F_DIV:
        x_end_div(x, f, p);
        break;
    case F_PRIMITIVE:
        if (f->value == NULL && f->obj == NULL) {
            if (f->reported) break;
            char path[256];
            x_path(x, NULL, -1, path, sizeof path);
            oo_add(x, HUB_OO_ERROR, "required", path,
                   "element has neither a value nor extensions (line %d)", cur_line(x));
            if (x->rc == HUB_OK) x->rc = HUB_E_INVALID;
            break;
        }
        attach_primitive(x, p, f);
        break;
    case F_COMPLEX:
        if (f->has_prim_arrays) tidy_prim_arrays(f->obj);
        if (p->kind == F_PRIMITIVE) {
            json_t *arr = json_object_get(p->obj, "extension");
            if (arr == NULL) {
                arr = json_array();
                if (!set_new(x, p->obj, "extension", arr)) break;
            }
            if (json_array_append_new(arr, f->obj) != 0) x_nomem(x);
        } else {
            attach(x, p, f->name, f->elem->max > 1, f->obj);
        }
        f->obj = NULL;
        break;
    case F_RESOURCE:
        if (f->has_prim_arrays) tidy_prim_arrays(f->obj);
        if (p == NULL) {
            x->root = f->obj;
        } else {
            p->obj = f->obj;
        }
        f->obj = NULL;
        break;
    case F_WRAPPER:
        if (f->obj == NULL) {
            char path[256];
            x_path(x, NULL, -1, path, sizeof path);
            oo_add(x, HUB_OO_ERROR, "required", path,
                   "element holds no resource (line %d)", cur_line(x));
            if (x->rc == HUB_OK) x->rc = HUB_E_INVALID;
            break;
        }
        attach(x, p, f->name, f->elem->max > 1, f->obj);
        f->obj = NULL;
        break;
    }
    frame_release(f);
    x->nframes--;
}

static void x_chars(void *ctx, const xmlChar *ch, int len) {
    x2j *x = ctx;
    if (x->stopped || x->skip > 0 || x->nframes == 0) return;
    frame *f = &x->frames[x->nframes - 1];
    if (f->text_reported || is_xml_space(ch, len)) return;
    f->text_reported = true;
    char path[256];
    x_path(x, NULL, -1, path, sizeof path);
    oo_add(x, HUB_OO_ERROR, "structure", path,
           "text content is not allowed in FHIR elements (line %d)", cur_line(x));
    if (x->rc == HUB_OK) x->rc = HUB_E_INVALID;
}

static void x_start_doc(void *ctx) {
    x2j *x = ctx;
    /* Offsets into the input (for the narrative) hold only without a
     * conversion; FHIR asks for UTF-8 anyway. */
    if (x->ctxt->input && x->ctxt->input->buf && x->ctxt->input->buf->encoder)
        x_fatal(x, HUB_E_PARSE, "structure", NULL, "document is not UTF-8");
}

static void x_dtd(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys) {
    (void)name;
    (void)ext;
    (void)sys;
    x_fatal(ctx, HUB_E_PARSE, "security", NULL, "DOCTYPE is not allowed");
}

static void x_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *pub,
                          const xmlChar *sys, xmlChar *content) {
    (void)name;
    (void)type;
    (void)pub;
    (void)sys;
    (void)content;
    x_fatal(ctx, HUB_E_PARSE, "security", NULL, "entity declarations are not allowed");
}

static void x_reference(void *ctx, const xmlChar *name) {
    (void)name;
    x_fatal(ctx, HUB_E_PARSE, "security", NULL, "entity references are not allowed");
}

static xmlEntityPtr x_get_entity(void *ctx, const xmlChar *name) {
    (void)ctx;
    (void)name;
    return NULL; /* only the predefined ones exist (libxml2 knows those) */
}

static void x_error(void *ctx, xmlErrorPtr e) {
    x2j *x = ctx;
    if (e == NULL || e->level < XML_ERR_ERROR || x->stopped) return;
    if (e->code == XML_ERR_USER_STOP) return;
    char msg[200];
    /* libxml2's messages name constructs, never the document's text;
     * trailing newline dropped */
    snprintf(msg, sizeof msg, "XML not well-formed: %s", e->message ? e->message : "error");
    size_t k = strlen(msg);
    while (k > 0 && (msg[k - 1] == '\n' || msg[k - 1] == ' ')) msg[--k] = '\0';
    oo_add(x, HUB_OO_FATAL,
           e->code == XML_ERR_UNDECLARED_ENTITY || e->code == XML_WAR_UNDECLARED_ENTITY
               ? "security"
               : "structure",
           NULL, "%s (line %d, column %d)", msg, e->line, e->int2);
    x->rc = HUB_E_PARSE;
    x->stopped = true;
    if (x->ctxt) xmlStopParser(x->ctxt);
}

/* A parser context over (p, n) with our handler, safe options and `user`
 * as the callbacks' context. NULL on allocation failure. */
static xmlParserCtxtPtr safe_ctxt(const char *p, size_t n, const xmlSAXHandler *sax,
                                  void *user) {
    xmlParserCtxtPtr c = xmlCreateMemoryParserCtxt(p, (int)n);
    if (c == NULL) return NULL;
    /* no XML_PARSE_NOENT, no DTDLOAD/DTDATTR/DTDVALID, no XINCLUDE, no HUGE */
    xmlCtxtUseOptions(c, XML_PARSE_NONET);
    memcpy(c->sax, sax, sizeof *sax);
    c->userData = user;
    c->replaceEntities = 0;
    c->loadsubset = 0;
    c->validate = 0;
    return c;
}


static void sax_init(xmlSAXHandler *h) {
    memset(h, 0, sizeof *h);
    h->initialized = XML_SAX2_MAGIC;
    h->internalSubset = x_dtd;
    h->externalSubset = x_dtd;
    h->entityDecl = x_entity_decl;
    h->reference = x_reference;
    h->getEntity = x_get_entity;
    h->getParameterEntity = x_get_entity;
    h->serror = x_error;
}

/* ---- the narrative ------------------------------------------------------ */

typedef struct {
    int depth;
    bool bad;      /* DTD, entity, or not well-formed */
    bool root_ok;  /* the root is div */
    bool root_ns;  /* ... in the XHTML namespace */
    bool root_nons; /* ... in no namespace (we add the declaration) */
    size_t root_end; /* offset just after the root's end tag */
} divcheck;

static void dc_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                     const xmlChar *URI, int nb_namespaces, const xmlChar **namespaces,
                     int nb_attributes, int nb_defaulted, const xmlChar **attributes) {
    (void)prefix;
    (void)nb_namespaces;
    (void)namespaces;
    (void)nb_attributes;
    (void)nb_defaulted;
    (void)attributes;
    xmlParserCtxtPtr c = ctx;
    divcheck *dc = c->_private;
    if (dc->depth++ > 0) return;
    dc->root_ok = streq((const char *)localname, "div");
    dc->root_ns = URI != NULL && streq((const char *)URI, XHTML_NS);
    dc->root_nons = URI == NULL;
}

/* The root must end where the text ends: nothing (comment, PI) after it. */
static void dc_end(void *ctx, const xmlChar *l, const xmlChar *p, const xmlChar *u) {
    (void)l;
    (void)p;
    (void)u;
    xmlParserCtxtPtr c = ctx;
    divcheck *dc = c->_private;
    if (--dc->depth == 0)
        dc->root_end = (size_t)c->input->consumed + (size_t)(c->input->cur - c->input->base);
}

static void dc_bad(void *ctx) {
    xmlParserCtxtPtr c = ctx;
    ((divcheck *)c->_private)->bad = true;
    xmlStopParser(c);
}
static void dc_dtd(void *ctx, const xmlChar *a, const xmlChar *b, const xmlChar *e) {
    (void)a;
    (void)b;
    (void)e;
    dc_bad(ctx);
}
static void dc_entity_decl(void *ctx, const xmlChar *a, int t, const xmlChar *b,
                           const xmlChar *e, xmlChar *f) {
    (void)a;
    (void)t;
    (void)b;
    (void)e;
    (void)f;
    dc_bad(ctx);
}
static void dc_reference(void *ctx, const xmlChar *name) {
    (void)name;
    dc_bad(ctx);
}
static void dc_error(void *ctx, xmlErrorPtr e) {
    if (e && e->level >= XML_ERR_ERROR && e->code != XML_ERR_USER_STOP) dc_bad(ctx);
}

/* Is `s` exactly one well-formed div element in the XHTML namespace (or in
 * none: the caller adds the declaration), with no DTD, no entity, nothing
 * before or after it? */
static div_form div_check(const char *s, size_t n) {
    if (n < 6 || s[0] != '<' || s[1] == '?' || s[1] == '!' || s[n - 1] != '>' || n > INT_MAX)
        return DIV_BAD;
    xmlSAXHandler h;
    sax_init(&h);
    h.internalSubset = dc_dtd;
    h.externalSubset = dc_dtd;
    h.entityDecl = dc_entity_decl;
    h.reference = dc_reference;
    h.serror = dc_error;
    h.startElementNs = dc_start;
    h.endElementNs = dc_end;
    divcheck dc = {0};
    xmlParserCtxtPtr c = xmlCreateMemoryParserCtxt(s, (int)n);
    if (c == NULL) return DIV_NOMEM;
    xmlCtxtUseOptions(c, XML_PARSE_NONET);
    memcpy(c->sax, &h, sizeof h);
    c->userData = c;
    c->_private = &dc;
    c->replaceEntities = 0;
    c->loadsubset = 0;
    xmlParseDocument(c);
    /* UTF-8 only, as for documents */
    bool ok = !dc.bad && c->wellFormed && c->nsWellFormed && dc.root_ok && dc.root_end == n &&
              (dc.root_ns || dc.root_nons) &&
              !(c->input && c->input->buf && c->input->buf->encoder);
    xmlFreeParserCtxt(c);
    if (!ok) return DIV_BAD;
    return dc.root_ns ? DIV_XHTML : DIV_NO_NS;
}

hub_status hub_fhir_xml_to_json(const hub_fhir_defs *d, const char *p, size_t n,
                                json_t **out, hub_oo *oo) {
    *out = NULL;
    xml_enter();
    if (n > HUB_MAX_HTTP_BODY || n > INT_MAX) {
        if (oo)
            hub_oo_add(oo, HUB_OO_FATAL, "too-costly", NULL, "XML document over %u bytes",
                       (unsigned)HUB_MAX_HTTP_BODY);
        return HUB_E_LIMIT;
    }
    if (n == 0 || p == NULL) {
        if (oo) hub_oo_add(oo, HUB_OO_FATAL, "structure", NULL, "empty XML document");
        return HUB_E_PARSE;
    }
    x2j *x = hub_calloc(1, sizeof *x);
    if (x == NULL) {
        if (oo) hub_oo_add(oo, HUB_OO_FATAL, "exception", NULL, "out of memory");
        return HUB_E_NOMEM;
    }
    x->d = d;
    x->elem_ext = hub_fhir_child(d, "Element", "extension", NULL);
    x->ext_group = group_of(d, "Extension");
    x->in = p;
    x->n = n;
    x->oo = oo;
    xmlSAXHandler h;
    sax_init(&h);
    h.startDocument = x_start_doc;
    h.startElementNs = x_start;
    h.endElementNs = x_end;
    h.characters = x_chars;
    h.cdataBlock = x_chars;
    h.ignorableWhitespace = x_chars;
    xmlParserCtxtPtr c = safe_ctxt(p, n, &h, x);
    if (c == NULL) {
        hub_free(x);
        if (oo) hub_oo_add(oo, HUB_OO_FATAL, "exception", NULL, "out of memory");
        return HUB_E_NOMEM;
    }
    x->ctxt = c;
    xmlParseDocument(c);
    if (!x->stopped && (!c->wellFormed || !c->nsWellFormed)) {
        if (oo) hub_oo_add(oo, HUB_OO_FATAL, "structure", NULL, "XML not well-formed");
        x->rc = HUB_E_PARSE;
    }
    xmlFreeParserCtxt(c);
    x->ctxt = NULL;
    hub_status rc = x->rc;
    if (rc == HUB_OK && x->root == NULL) {
        if (oo) hub_oo_add(oo, HUB_OO_FATAL, "structure", NULL, "no resource in the document");
        rc = HUB_E_PARSE;
    }
    for (size_t i = 0; i < x->nframes; i++) frame_release(&x->frames[i]);
    if (rc == HUB_OK)
        *out = x->root;
    else
        json_decref(x->root);
    hub_free(x);
    return rc;
}

/* ======================================================================== */
/* JSON -> XML                                                              */
/* ======================================================================== */

typedef struct {
    child_info ci;
    const char *name; /* the JSON key, without '_' */
    const json_t *val, *ext;
    size_t order;
    bool attr;
} wprop;

typedef struct {
    const hub_fhir_defs *d;
    hub_buf *out;
    bool pretty;
    bool oom;
    hub_err *err;
    hub_status rc;
    wprop *props;
    size_t nprops, cap;
    char path[256];
    size_t plen;
} j2x;

static void put(j2x *w, const char *s, size_t n) {
    if (!w->oom && hub_buf_append(w->out, s, n) != HUB_OK) w->oom = true;
}
static void puts_(j2x *w, const char *s) { put(w, s, strlen(s)); }

static void indent(j2x *w, int depth) {
    static const char sp[] = "\n                                                                ";
    if (!w->pretty) return;
    size_t k = (size_t)depth * 2;
    if (k > sizeof sp - 2) k = sizeof sp - 2;
    put(w, sp, k + 1);
}

static hub_status w_fail(j2x *w, hub_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hub_status w_fail(j2x *w, hub_status code, const char *fmt, ...) {
    if (w->rc != HUB_OK) return w->rc;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->rc = hub_err_set(w->err, code, w->path[0] ? w->path : "resource", "%s", msg);
    return w->rc;
}

/* FHIRPath of the element being written, for errors. */
static size_t path_push(j2x *w, const char *name, long idx) {
    size_t old = w->plen;
    int k;
    if (old == 0)
        k = snprintf(w->path, sizeof w->path, "%s", name);
    else if (idx >= 0)
        k = snprintf(w->path + old, sizeof w->path - old, ".%s[%ld]", name, idx);
    else
        k = snprintf(w->path + old, sizeof w->path - old, ".%s", name);
    if (k > 0) w->plen = old + (size_t)k < sizeof w->path ? old + (size_t)k : sizeof w->path - 1;
    return old;
}
static void path_pop(j2x *w, size_t old) {
    w->plen = old;
    w->path[old] = '\0';
}

/* Escaped text for an attribute value. Tab, CR and LF become character
 * references (a parser would normalize them to spaces otherwise); characters
 * XML 1.0 cannot carry are refused. */
static hub_status put_attr_text(j2x *w, const char *s, size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        if (c >= 0x20 && c != '&' && c != '<' && c != '>' && c != '"' && c != 0xEF) continue;
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\t': rep = "&#9;"; break;
        case '\n': rep = "&#10;"; break;
        case '\r': rep = "&#13;"; break;
        case 0xEF: /* U+FFFE and U+FFFF are not XML characters */
            if (i + 2 < n && (unsigned char)s[i + 1] == 0xBF &&
                ((unsigned char)s[i + 2] == 0xBE || (unsigned char)s[i + 2] == 0xBF))
                return w_fail(w, HUB_E_INVALID, "value has a character XML cannot carry");
            continue;
        default:
            return w_fail(w, HUB_E_INVALID, "value has a control character XML cannot carry");
        }
        put(w, s + run, i - run);
        puts_(w, rep);
        run = i + 1;
    }
    put(w, s + run, n - run);
    return HUB_OK;
}

static void put_attr(j2x *w, const char *name, const char *val, size_t n) {
    put(w, " ", 1);
    puts_(w, name);
    put(w, "=\"", 2);
    put_attr_text(w, val, n);
    put(w, "\"", 1);
}

/* A real in the shortest form that reads back the same, always with a '.'
 * or an exponent so that it reads back as a real. */
static void format_real(double v, char *buf, size_t cap) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (strpbrk(buf, ".eE") == NULL) {
        size_t k = strlen(buf);
        if (k + 3 <= cap) memcpy(buf + k, ".0", 3);
    }
}

/* The value attribute's text for a JSON scalar of a primitive type. */
static hub_status prim_text(j2x *w, prim_kind pk, const char *type, const json_t *v,
                            char *num, size_t cap, const char **s, size_t *n) {
    switch (pk) {
    case PK_BOOLEAN:
        if (!json_is_boolean(v))
            return w_fail(w, HUB_E_INVALID, "value of type 'boolean' is not a JSON boolean");
        *s = json_is_true(v) ? "true" : "false";
        *n = strlen(*s);
        return HUB_OK;
    case PK_INTEGER:
        if (!json_is_integer(v))
            return w_fail(w, HUB_E_INVALID, "value of type '%s' is not a JSON integer", type);
        snprintf(num, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *s = num;
        *n = strlen(num);
        return HUB_OK;
    case PK_DECIMAL:
        if (json_is_integer(v))
            snprintf(num, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_real(v))
            format_real(json_real_value(v), num, cap);
        else
            return w_fail(w, HUB_E_INVALID, "value of type 'decimal' is not a JSON number");
        *s = num;
        *n = strlen(num);
        return HUB_OK;
    default:
        if (!json_is_string(v))
            return w_fail(w, HUB_E_INVALID, "value of type '%s' is not a JSON string", type);
        *s = json_string_value(v);
        *n = json_string_length(v);
        return HUB_OK;
    }
}

/* Writes the narrative, checked first (see div_check). */
static hub_status w_div(j2x *w, const char *s, size_t n) {
    div_form f = div_check(s, n);
    if (f == DIV_NOMEM) return w_fail(w, HUB_E_NOMEM, "out of memory");
    if (f == DIV_BAD)
        return w_fail(w, HUB_E_INVALID, "narrative is not one well-formed XHTML div element");
    if (f == DIV_XHTML) {
        put(w, s, n);
    } else {
        put(w, s, 4); /* "<div" */
        puts_(w, " xmlns=\"" XHTML_NS "\"");
        put(w, s + 4, n - 4);
    }
    return HUB_OK;
}

/* ---- objects ------------------------------------------------------------- */

static hub_status w_object(j2x *w, const json_t *obj, const char *key, bool is_resource,
                           const char *tag, int depth);

static hub_status w_resource(j2x *w, const json_t *res, int depth, bool root) {
    if (!json_is_object(res)) return w_fail(w, HUB_E_INVALID, "resource is not a JSON object");
    const char *rt = json_string_value(json_object_get(res, "resourceType"));
    if (rt == NULL) return w_fail(w, HUB_E_INVALID, "resource has no resourceType");
    if (!hub_fhir_is_resource(w->d, rt))
        return w_fail(w, HUB_E_INVALID, "unknown resource type '%.64s'", rt);
    size_t old = w->plen;
    if (root) path_push(w, rt, -1);
    if (!root) indent(w, depth);
    put(w, "<", 1);
    puts_(w, rt);
    if (root) puts_(w, " xmlns=\"" FHIR_NS "\"");
    hub_status rc = w_object(w, res, rt, true, rt, depth);
    if (root) path_pop(w, old);
    return rc;
}

/* A primitive element: value attribute, id attribute, extension children. */
static hub_status w_primitive(j2x *w, const char *name, prim_kind pk, const char *type,
                              const json_t *v,
                              const json_t *ext, int depth) {
    if (v && json_is_null(v)) v = NULL;
    if (ext && json_is_null(ext)) ext = NULL;
    if (v == NULL && ext == NULL)
        return w_fail(w, HUB_E_INVALID, "element has neither a value nor extensions");
    const json_t *id = NULL, *exts = NULL;
    if (ext) {
        if (!json_is_object(ext))
            return w_fail(w, HUB_E_INVALID, "'_%s' is not an object", name);
        const char *k;
        const json_t *m;
        json_object_foreach((json_t *)ext, k, m) {
            if (streq(k, "id") && json_is_string(m))
                id = m;
            else if (streq(k, "extension") && json_is_array(m) && json_array_size(m) > 0)
                exts = m;
            else
                return w_fail(w, HUB_E_INVALID, "'_%s' has an unknown or malformed '%.40s'",
                              name, k);
        }
    }
    char num[64];
    const char *s = NULL;
    size_t sn = 0;
    if (v) {
        if (json_is_object(v) || json_is_array(v))
            return w_fail(w, HUB_E_INVALID, "value of primitive '%s' is not a JSON scalar", name);
        if (prim_text(w, pk, type, v, num, sizeof num, &s, &sn) != HUB_OK) return w->rc;
    }
    indent(w, depth);
    put(w, "<", 1);
    puts_(w, name);
    if (id) put_attr(w, "id", json_string_value(id), json_string_length(id));
    if (v) put_attr(w, "value", s, sn);
    if (w->rc != HUB_OK) return w->rc;
    if (exts == NULL) {
        put(w, "/>", 2);
        return HUB_OK;
    }
    put(w, ">", 1);
    size_t i;
    const json_t *e;
    json_array_foreach(exts, i, e) {
        size_t old = path_push(w, "extension", (long)i);
        if (!json_is_object(e)) return w_fail(w, HUB_E_INVALID, "extension is not an object");
        indent(w, depth + 1);
        puts_(w, "<extension");
        if (w_object(w, e, "Extension", false, "extension", depth + 1) != HUB_OK) return w->rc;
        path_pop(w, old);
    }
    indent(w, depth);
    put(w, "</", 2);
    puts_(w, name);
    put(w, ">", 1);
    return HUB_OK;
}

/* One child (non-attribute) property: its element(s). */
static hub_status w_child(j2x *w, const wprop *pr, int depth) {
    const hub_fhir_elem *e = pr->ci.e;
    bool repeats = e->max > 1;
    bool prim = pr->ci.cls == TC_PRIMITIVE;
    const json_t *val = pr->val, *ext = pr->ext;

    if (prim) {
        if (!repeats) {
            if (val && (json_is_array(val)))
                return w_fail(w, HUB_E_INVALID, "'%s' is an array but repeats at most once",
                              pr->name);
            size_t old = path_push(w, pr->name, -1);
            hub_status rc = w_primitive(w, pr->name, pr->ci.pk, pr->ci.type, val, ext, depth);
            path_pop(w, old);
            return rc;
        }
        if ((val && !json_is_array(val)) || (ext && !json_is_array(ext)))
            return w_fail(w, HUB_E_INVALID, "'%s' repeats and must be an array", pr->name);
        size_t nv = val ? json_array_size(val) : 0, ne = ext ? json_array_size(ext) : 0;
        if (val && ext && nv != ne)
            return w_fail(w, HUB_E_INVALID, "'%s' and '_%s' are not aligned", pr->name,
                          pr->name);
        size_t cnt = nv > ne ? nv : ne;
        if (cnt == 0) return w_fail(w, HUB_E_INVALID, "'%s' is an empty array", pr->name);
        for (size_t i = 0; i < cnt; i++) {
            size_t old = path_push(w, pr->name, (long)i);
            hub_status rc = w_primitive(w, pr->name, pr->ci.pk, pr->ci.type,
                                        val ? json_array_get(val, i) : NULL,
                                        ext ? json_array_get(ext, i) : NULL, depth);
            path_pop(w, old);
            if (rc != HUB_OK) return rc;
        }
        return HUB_OK;
    }
    if (ext) return w_fail(w, HUB_E_INVALID, "'_%s' on an element that is not primitive", pr->name);

    size_t cnt = 1;
    if (repeats) {
        if (!json_is_array(val))
            return w_fail(w, HUB_E_INVALID, "'%s' repeats and must be an array", pr->name);
        cnt = json_array_size(val);
        if (cnt == 0) return w_fail(w, HUB_E_INVALID, "'%s' is an empty array", pr->name);
    } else if (json_is_array(val)) {
        return w_fail(w, HUB_E_INVALID, "'%s' is an array but repeats at most once", pr->name);
    }
    bool wrapper = pr->ci.cls == TC_RESOURCE;
    bool xhtml = pr->ci.cls == TC_XHTML;
    const char *key = children_key(e, pr->ci.type);
    for (size_t i = 0; i < cnt; i++) {
        const json_t *v = repeats ? json_array_get(val, i) : val;
        size_t old = path_push(w, pr->name, repeats ? (long)i : -1);
        if (xhtml) {
            if (!json_is_string(v)) return w_fail(w, HUB_E_INVALID, "narrative is not a string");
            indent(w, depth);
            if (w_div(w, json_string_value(v), json_string_length(v)) != HUB_OK) return w->rc;
        } else if (!json_is_object(v)) {
            return w_fail(w, HUB_E_INVALID, "'%s' is not a JSON object", pr->name);
        } else if (wrapper) {
            indent(w, depth);
            put(w, "<", 1);
            puts_(w, pr->name);
            put(w, ">", 1);
            if (w_resource(w, v, depth + 1, false) != HUB_OK) return w->rc;
            indent(w, depth);
            put(w, "</", 2);
            puts_(w, pr->name);
            put(w, ">", 1);
        } else {
            indent(w, depth);
            put(w, "<", 1);
            puts_(w, pr->name);
            if (w_object(w, v, key, false, pr->name, depth) != HUB_OK) return w->rc;
        }
        path_pop(w, old);
    }
    return HUB_OK;
}

static hub_status add_prop(j2x *w, const wprop *pr) {
    if (w->nprops == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        wprop *np = hub_realloc(w->props, cap * sizeof *np);
        if (np == NULL) return w_fail(w, HUB_E_NOMEM, "out of memory");
        w->props = np;
        w->cap = cap;
    }
    w->props[w->nprops++] = *pr;
    return HUB_OK;
}

/* Writes the rest of an element whose "<tag" is out: attributes, then "/>",
 * or ">", its children in definition order, and "</tag>". */
static hub_status w_object(j2x *w, const json_t *obj, const char *key, bool is_resource,
                           const char *tag, int depth) {
    if (depth >= HUB_MAX_XML_DEPTH) return w_fail(w, HUB_E_LIMIT, "resource nested too deep");
    uint32_t g = group_of(w->d, key);
    if (g == HUB__FHIR_NONE) return w_fail(w, HUB_E_INVALID, "no definition for '%.64s'", key);
    /* a group's elements are contiguous, in definition order */
    const hub_fhir_elem *kids = &w->d->elems[w->d->groups[g].start];
    size_t base = w->nprops;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (is_resource && streq(k, "resourceType")) continue;
        bool under = k[0] == '_';
        const char *nm = under ? k + 1 : k;
        wprop pr;
        if (!child_lookup(w->d, g, nm, strlen(nm), &pr.ci)) {
            w->nprops = base;
            return w_fail(w, HUB_E_INVALID, "unknown element '%.64s'", k);
        }
        pr.name = nm;
        pr.val = v;
        pr.ext = NULL;
        pr.order = (size_t)(pr.ci.e - kids);
        bool prim = pr.ci.cls == TC_PRIMITIVE;
        pr.attr = is_attr_elem(pr.ci.e, is_resource);
        if (under) {
            if (!prim || pr.attr) {
                w->nprops = base;
                return w_fail(w, HUB_E_INVALID, "'%.64s' on an element that is not primitive", k);
            }
            if (json_object_get(obj, nm) != NULL) continue; /* written with "nm" */
            pr.val = NULL;
            pr.ext = v;
        } else if (prim && !pr.attr) {
            char ub[128];
            const char *uk = under_key(nm, ub, sizeof ub);
            pr.ext = uk ? json_object_get(obj, uk) : NULL;
        }
        if (add_prop(w, &pr) != HUB_OK) {
            w->nprops = base;
            return w->rc;
        }
    }
    /* definition order; insertion sort (few properties, often sorted) */
    for (size_t i = base + 1; i < w->nprops; i++) {
        wprop t = w->props[i];
        size_t j = i;
        while (j > base && w->props[j - 1].order > t.order) {
            w->props[j] = w->props[j - 1];
            j--;
        }
        w->props[j] = t;
    }
    /* after the sort, two types of one choice sit side by side */
    for (size_t i = base + 1; i < w->nprops; i++) {
        if (w->props[i].ci.e == w->props[i - 1].ci.e) {
            const char *a = w->props[i - 1].name, *b = w->props[i].name;
            w->nprops = base;
            return w_fail(w, HUB_E_INVALID, "'%.60s' and '%.60s' are one element", a, b);
        }
    }
    bool children = false;
    for (size_t i = base; i < w->nprops; i++) {
        const wprop *pr = &w->props[i];
        if (!pr->attr) {
            children = true;
            continue;
        }
        if (!json_is_string(pr->val)) {
            w->nprops = base;
            return w_fail(w, HUB_E_INVALID, "'%s' is not a JSON string", pr->name);
        }
        put_attr(w, pr->name, json_string_value(pr->val), json_string_length(pr->val));
    }
    if (w->rc != HUB_OK) {
        w->nprops = base;
        return w->rc;
    }
    if (!children) {
        put(w, "/>", 2);
        w->nprops = base;
        return HUB_OK;
    }
    put(w, ">", 1);
    size_t end = w->nprops;
    for (size_t i = base; i < end; i++) {
        wprop pr = w->props[i]; /* a copy: recursion may move the array */
        if (pr.attr) continue;
        if (w_child(w, &pr, depth + 1) != HUB_OK) {
            w->nprops = base;
            return w->rc;
        }
    }
    w->nprops = base;
    indent(w, depth);
    put(w, "</", 2);
    puts_(w, tag);
    put(w, ">", 1);
    return HUB_OK;
}

hub_status hub_fhir_json_to_xml(const hub_fhir_defs *d, const json_t *res, bool pretty,
                                hub_buf *out, hub_err *err) {
    xml_enter();
    j2x w = {0};
    w.d = d;
    w.out = out;
    w.pretty = pretty;
    w.err = err;
    size_t start = out->n;
    hub_status rc = w_resource(&w, res, 0, true);
    if (rc == HUB_OK && pretty) put(&w, "\n", 1);
    if (rc == HUB_OK && w.oom) rc = hub_err_set(err, HUB_E_NOMEM, "resource", "out of memory");
    hub_free(w.props);
    if (rc != HUB_OK) out->n = start;
    return rc;
}

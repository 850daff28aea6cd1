/* limits: every size, depth and count a parser of outside input checks, one
 * reason per limit. Configuration may lower or raise the ones marked (cfg). */
#ifndef HUB_LIMITS_H
#define HUB_LIMITS_H

/* MLLP: largest frame accepted (cfg mllp.max_frame). */
#define HUB_MAX_FRAME (16u << 20)
/* MLLP: concurrent connections per hub (cfg mllp.max_connections). */
#define HUB_MAX_MLLP_CONNS 1024
/* HL7 v2: segments in one message. */
#define HUB_MAX_SEGMENTS 100000
/* HL7 v2: fields in one segment. */
#define HUB_MAX_FIELDS 1000
/* HL7 v2: repetitions of one field. */
#define HUB_MAX_REPS 10000
/* HL7 v2: components of one field repetition, sub-components of one component. */
#define HUB_MAX_COMPONENTS 1000
#define HUB_MAX_SUBCOMPONENTS 1000
/* HL7 v2: one field's bytes. */
#define HUB_MAX_FIELD (4u << 20)
/* HL7 v2: messages in one batch file. */
#define HUB_MAX_BATCH_MESSAGES 1000000
/* HL7 v2: nesting of BHS inside FHS. */
#define HUB_MAX_BATCH_DEPTH 4
/* HL7 v2: a terse path's text. */
#define HUB_MAX_PATH 128
/* HL7 v2: ERR segments in one ACK. */
#define HUB_MAX_ACK_ERRORS 50
/* HTTP: request body (cfg http.max_body). */
#define HUB_MAX_HTTP_BODY (16u << 20)
/* JSON: nesting depth. */
#define HUB_MAX_JSON_DEPTH 64
/* XML: nesting depth of elements (FHIR XML, narrative included). */
#define HUB_MAX_XML_DEPTH 128
/* Config file size. */
#define HUB_MAX_CONFIG_FILE (1u << 20)

#endif

#include "mllp_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int mt_dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

bool mt_write(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

bool mt_write_frame(int fd, const char *msg) {
    hub_buf b;
    hub_buf_init(&b);
    hub_mllp_frame_append(&b, msg, strlen(msg));
    bool ok = mt_write(fd, b.p, b.n);
    hub_buf_release(&b);
    return ok;
}

long mt_read_frame(int fd, char *out, size_t cap, int timeout_ms) {
    size_t n = 0;
    bool in = false;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        if (r == 0) return -2;
        if (r < 0) return -1;
        char ch;
        ssize_t g = recv(fd, &ch, 1, 0);
        if (g <= 0) return -1;
        if (!in) {
            if (ch == HUB_MLLP_SB) in = true;
            continue;
        }
        if (ch == HUB_MLLP_EB) {
            char cr;
            if (recv(fd, &cr, 1, 0) != 1) return -1;
            out[n < cap ? n : cap - 1] = '\0';
            return (long)n;
        }
        if (n + 1 < cap) out[n] = ch;
        n++;
    }
}

bool mt_wait_closed(int fd, int timeout_ms) {
    int64_t end = hub_mono_ns() + (int64_t)timeout_ms * 1000000;
    char buf[4096];
    for (;;) {
        int64_t left = (end - hub_mono_ns()) / 1000000;
        if (left <= 0) return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r == 0) return false;
        ssize_t g = recv(fd, buf, sizeof buf, 0);
        if (g <= 0) return true;
    }
}

void mt_message(char *out, size_t cap, const char *id) {
    snprintf(out, cap,
             "MSH|^~\\&|SND|FAC|HUB|HUB|20260101000000||ADT^A01|%s|P|2.5\r"
             "PID|1||%s^^^FAC^MR||DOE^JOHN\r",
             id, id);
}

void mt_ack_for(const char *msg, size_t n, const char *code, char *out, size_t cap) {
    hub_slice id = {"", 0};
    hub_mllp_field(hub_slice_of(msg, n), "MSH", 10, &id);
    if (id.n > 100) id.n = 100;
    snprintf(out, cap, "MSH|^~\\&|HUB|HUB|SND|FAC|20260101000000||ACK|A%.*s|P|2.5\r"
                       "MSA|%s|%.*s\r",
             (int)id.n, id.p, code, (int)id.n, id.p);
}

bool mt_ack_code(const char *ack, char out[3]) {
    hub_slice f;
    if (!hub_mllp_field(hub_slice_cstr(ack), "MSA", 1, &f) || f.n != 2) return false;
    out[0] = f.p[0];
    out[1] = f.p[1];
    out[2] = '\0';
    return true;
}

int mt_sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    if (r == -1 || !WIFEXITED(r)) return -1;
    return WEXITSTATUS(r);
}

static char tls_dir[256];
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void rm_tls(void) {
    if (tls_dir[0]) mt_sh("rm -rf '%s'", tls_dir);
}

static void make_tls(void) {
    char tmpl[] = "/tmp/hub-mllp-tls-XXXXXX";
    if (mkdtemp(tmpl) == NULL) return;
    const char *d = tmpl;
    int r = mt_sh(
        "cd %s && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "  -subj '/CN=hub-test-ca' >/dev/null 2>&1 && "
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
        "  -subj '/CN=localhost' >/dev/null 2>&1 && "
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "  -out server.pem -days 2 -extfile san.ext >/dev/null 2>&1 && "
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
        "  -subj '/O=Hub Test/CN=hub-test-client' >/dev/null 2>&1 && "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "  -out client.pem -days 2 >/dev/null 2>&1 && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem "
        "  -days 2 -subj '/CN=other-ca' >/dev/null 2>&1 && "
        "openssl req -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.csr "
        "  -subj '/CN=rogue' >/dev/null 2>&1 && "
        "openssl x509 -req -in rogue.csr -CA other-ca.pem -CAkey other-ca.key "
        "  -CAcreateserial -out rogue.pem -days 2 >/dev/null 2>&1",
        d);
    snprintf(tls_dir, sizeof tls_dir, "%s", d);
    atexit(rm_tls);
    if (r != 0) {
        rm_tls();
        tls_dir[0] = '\0';
    }
}

const char *mt_tls_dir(void) {
    pthread_once(&tls_once, make_tls);
    return tls_dir[0] ? tls_dir : NULL;
}
